//! Any view Candle can make (permute, narrow, broadcast of a contiguous buffer) is rebuilt
//! from its base buffer with the same layout and the same values.

use candle_core::{DType, Device, IndexOp, Tensor};
use inference::ops::Op;
use op_matrix_core::layout::{rebuild, split, Strided};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod common;

#[derive(Debug, Clone)]
enum View {
    Permute(Vec<usize>),
    Narrow {
        dim: usize,
        start_frac: f64,
        len_frac: f64,
    },
    Unsqueeze(usize),
    Broadcast {
        dim: usize,
        size: usize,
    },
}

fn views(rank: usize) -> impl Strategy<Value = Vec<View>> {
    let one = prop_oneof![
        Just(()).prop_perturb(move |_, mut rng| {
            let mut p: Vec<usize> = (0..rank).collect();
            for i in (1..p.len()).rev() {
                p.swap(i, rng.random_range(0..=i));
            }
            View::Permute(p)
        }),
        (0..rank, 0.0..1.0f64, 0.0..1.0f64).prop_map(|(dim, start_frac, len_frac)| View::Narrow {
            dim,
            start_frac,
            len_frac
        }),
        (0..=rank).prop_map(View::Unsqueeze),
        (0..rank, 2..4usize).prop_map(|(dim, size)| View::Broadcast { dim, size }),
    ];
    proptest::collection::vec(one, 0..5)
}

/// Applies `ops` to `t`, skipping the ones that do not fit its current shape.
fn apply(mut t: Tensor, ops: &[View]) -> Tensor {
    for op in ops {
        let dims = t.dims().to_vec();
        t = match op {
            View::Permute(p) if p.len() == dims.len() => t.permute(p.as_slice()).unwrap(),
            View::Narrow {
                dim,
                start_frac,
                len_frac,
            } if *dim < dims.len() && dims[*dim] > 0 => {
                let n = dims[*dim];
                let start = ((n as f64 * start_frac) as usize).min(n - 1);
                let len = (((n - start) as f64 * len_frac) as usize).max(1);
                t.narrow(*dim, start, len).unwrap()
            }
            View::Unsqueeze(d) if *d <= dims.len() && dims.len() < 6 => t.unsqueeze(*d).unwrap(),
            View::Broadcast { dim, size } if *dim < dims.len() && dims[*dim] == 1 => {
                let mut shape = dims.clone();
                shape[*dim] = *size;
                t.broadcast_as(shape).unwrap()
            }
            _ => t,
        };
    }
    t
}

/// Equal as far as any kernel can tell: strides of size-1 dims never address memory.
fn equivalent(a: &Strided, b: &Strided) -> bool {
    a.shape == b.shape
        && a.offset == b.offset
        && a.shape
            .iter()
            .zip(a.stride.iter().zip(&b.stride))
            .all(|(&n, (x, y))| n == 1 || x == y)
}

/// Any view of any dtype, split into its base buffer and layout and rebuilt on `device`,
/// has the same layout and values.
fn every_view_round_trips(device: &Device) {
    let config = Config {
        source_file: Some(file!()),
        ..Config::default()
    };
    let dtypes = prop_oneof![
        Just(DType::F32),
        Just(DType::BF16),
        Just(DType::F16),
        Just(DType::U32)
    ];
    let cases = (proptest::collection::vec(1..6usize, 1..5), views(4), dtypes);
    TestRunner::new(config)
        .run(&cases, |(shape, ops, dtype)| {
            let n: usize = shape.iter().product();
            let base = Tensor::arange(0u32, n as u32, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .reshape(shape.as_slice())
                .unwrap();
            let view = apply(base, &ops);
            let (buffer, strided) = split(&view).unwrap();
            let rebuilt = rebuild(&buffer, &strided, device).unwrap();
            prop_assert!(
                equivalent(&Strided::of(&rebuilt), &strided),
                "{:?} rebuilt as {:?}",
                strided,
                Strided::of(&rebuilt)
            );
            let values = |t: &Tensor| {
                let t = t.to_device(&Device::Cpu).unwrap().to_dtype(DType::F32);
                t.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            };
            prop_assert_eq!(values(&rebuilt), values(&view));
            Ok(())
        })
        .unwrap();
}

common::on_every_backend!(every_view_round_trips);

#[test]
fn a_narrowed_transposed_kv_cache_view_keeps_its_strides() {
    let t = Tensor::arange(0f32, 2.0 * 3.0 * 10.0 * 4.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 10, 4))
        .unwrap()
        .narrow(2, 3, 5)
        .unwrap()
        .transpose(2, 3)
        .unwrap();
    let (buffer, strided) = split(&t).unwrap();
    assert_eq!(strided.stride, vec![120, 40, 1, 4]);
    assert_eq!(strided.offset, 12);
    let rebuilt = rebuild(&buffer, &strided, &Device::Cpu).unwrap();
    assert_eq!(Strided::of(&rebuilt), strided);
}

/// Goldens share base buffers between cases; a case whose op writes in place must not change
/// what the next case reads.
#[test]
fn a_rebuilt_input_owns_its_buffer() {
    let base = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap();
    let t = base.reshape((2, 3, 4)).unwrap();
    let (buffer, strided) = split(&t).unwrap();
    let rebuilt = rebuild(&buffer, &strided, &Device::Cpu).unwrap();
    let ones = Tensor::ones((2, 1, 4), DType::F32, &Device::Cpu).unwrap();
    let written = Op::WriteAt { dim: 1, offset: 2 }
        .apply(&[&rebuilt, &ones])
        .unwrap();
    assert_eq!(
        written.i((0, 2)).unwrap().to_vec1::<f32>().unwrap(),
        [1.0; 4]
    );
    assert_eq!(
        buffer.to_vec1::<f32>().unwrap(),
        (0..24).map(|i| i as f32).collect::<Vec<_>>()
    );
}
