//! Data movement: `contiguous`, `cat`, `write_at`, `index_select`. Exact in every dtype.

use candle_core::{Device, Tensor};
use inference::ops::Op;
use proptest::prelude::*;

use super::{Host, OpSpec};
use crate::fuzz::{any_layout, dim, float, seed, shape, tensor, FuzzCase, Layout};

/// `dims` split around `dim`: the elements before it (outer), its size and after it (inner).
fn around(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        dims[..dim].iter().product(),
        dims[dim],
        dims[dim + 1..].iter().product(),
    )
}

pub struct Contiguous;

impl OpSpec for Contiguous {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (shape(4), any_layout(), float(), seed())
            .prop_map(|(sh, l, dt, s)| FuzzCase {
                op: Op::Contiguous,
                inputs: vec![tensor(&sh, dt, l, s)],
            })
            .boxed()
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        inputs[0].values.clone()
    }
}

pub struct Cat;

impl OpSpec for Cat {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            shape(4),
            any::<usize>(),
            dim(),
            any_layout(),
            any_layout(),
            float(),
            seed(),
        )
            .prop_map(|(sh, d, extra, la, lb, dt, s)| {
                let d = d % sh.len();
                let mut other = sh.clone();
                other[d] = extra;
                FuzzCase {
                    op: Op::Cat { dim: d },
                    inputs: vec![tensor(&sh, dt, la, s), tensor(&other, dt, lb, s ^ 1)],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::Cat { dim } = *op else {
            unreachable!("the cat spec gets cat ops")
        };
        let (outer, _, inner) = around(&inputs[0].dims, dim);
        (0..outer)
            .flat_map(|o| {
                inputs.iter().flat_map(move |x| {
                    let block = x.dims[dim] * inner;
                    x.values[o * block..(o + 1) * block].iter().copied()
                })
            })
            .collect()
    }
}

pub struct WriteAt;

impl OpSpec for WriteAt {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            shape(4),
            any::<usize>(),
            dim(),
            any::<usize>(),
            float(),
            seed(),
        )
            .prop_map(|(sh, d, extra, at, dt, s)| {
                // The buffer has `extra` more rows than the source along `d`: every offset
                // from the start to flush with the end can occur.
                let d = d % sh.len();
                let mut buffer = sh.clone();
                buffer[d] += extra;
                FuzzCase {
                    op: Op::WriteAt {
                        dim: d,
                        offset: at % (extra + 1),
                    },
                    inputs: vec![
                        tensor(&buffer, dt, Layout::Contiguous, s),
                        tensor(&sh, dt, Layout::Contiguous, s ^ 1),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::WriteAt { dim, offset } = *op else {
            unreachable!("the write_at spec gets write_at ops")
        };
        let (buffer, src) = (&inputs[0], &inputs[1]);
        let (outer, rows, inner) = around(&buffer.dims, dim);
        let n = src.dims[dim];
        let mut out = buffer.values.clone();
        for o in 0..outer {
            let at = (o * rows + offset) * inner;
            out[at..at + n * inner]
                .copy_from_slice(&src.values[o * n * inner..(o + 1) * n * inner]);
        }
        out
    }
}

pub struct IndexSelect;

impl OpSpec for IndexSelect {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (dim(), dim(), dim(), float(), seed())
            .prop_map(|(rows, cols, n, dt, s)| {
                let ids: Vec<u32> = (0..n)
                    .map(|i| ((s as usize + i * 7) % rows) as u32)
                    .collect();
                let ids = Tensor::from_vec(ids, n, &Device::Cpu).expect("ids");
                FuzzCase {
                    op: Op::IndexSelect { dim: 0 },
                    inputs: vec![tensor(&[rows, cols], dt, Layout::Contiguous, s), ids],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::IndexSelect { dim } = *op else {
            unreachable!("the index_select spec gets index_select ops")
        };
        let (x, ids) = (&inputs[0], &inputs[1]);
        let (outer, rows, inner) = around(&x.dims, dim);
        (0..outer)
            .flat_map(|o| {
                ids.values.iter().flat_map(move |&id| {
                    let at = (o * rows + id as usize) * inner;
                    x.values[at..at + inner].iter().copied()
                })
            })
            .collect()
    }
}
