//! `softmax_last_dim` on the CPU: candle-nn 0.11 sums the exponentials in the tensor's own
//! dtype, so in bf16 a row of a few hundred keys loses whole percents; this works in f32 per
//! row and rounds once, as candle-nn's CUDA and Metal kernels do. The model can then skip the
//! casts around it. libm's `expf` does not vectorize; the rows are computed with the
//! branch-free one of [`elementwise`](super::elementwise), per kernel path. Other backends use
//! candle-nn's kernel.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

use super::elementwise::{exp, narrow, per_kernel_path, widen};

/// Elements per parallel task, in whole rows.
const CHUNK: usize = 16 * 1024;

pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::BF16 | DType::F16 | DType::F32) {
        return x.contiguous()?.apply_op1_no_bwd(&CpuSoftmax);
    }
    candle_nn::ops::softmax_last_dim(x)
}

/// Lanes of the max and the sum: independent accumulators that the loops vectorize over, as
/// floats may not be reassociated.
const LANES: usize = 16;

/// Softmax of one row in f32, through `exps` (a row of scratch), rounded once into `dst`.
#[inline(always)]
fn row<T: Copy>(
    src: &[T],
    dst: &mut [T],
    exps: &mut [f32],
    widen: impl Fn(T) -> f32,
    narrow: impl Fn(f32) -> T,
) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = src.chunks_exact(LANES);
    let tail = chunks.remainder().iter().map(|&v| widen(v));
    let tail = tail.fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = m.max(widen(v));
        }
    }
    let max = lanes.iter().copied().fold(tail, f32::max);
    for (e, &v) in exps.iter_mut().zip(src) {
        *e = exp(widen(v) - max);
    }
    let mut lanes = [0f32; LANES];
    let chunks = exps.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (s, &e) in lanes.iter_mut().zip(chunk) {
            *s += e;
        }
    }
    let sum = lanes.iter().sum::<f32>() + tail;
    for (o, &e) in dst.iter_mut().zip(exps.iter()) {
        *o = narrow(e / sum);
    }
}

per_kernel_path! {
    fn row_bf16(src: &[bf16], dst: &mut [bf16], exps: &mut [f32]) {
        row(src, dst, exps, widen, narrow)
    }
}

per_kernel_path! {
    fn row_f16(src: &[f16], dst: &mut [f16], exps: &mut [f32]) {
        row(src, dst, exps, f16::to_f32, f16::from_f32)
    }
}

per_kernel_path! {
    fn row_f32(src: &[f32], dst: &mut [f32], exps: &mut [f32]) {
        row(src, dst, exps, |v| v, |v| v)
    }
}

/// Softmax of every `n`-long row of `src` by `row`, on every core.
fn rows<T: Copy + Default + Send + Sync>(
    src: &[T],
    n: usize,
    row: fn(&[T], &mut [T], &mut [f32]),
) -> Vec<T> {
    let mut out = vec![T::default(); src.len()];
    // An empty row (n = 0) has nothing to compute; 1 keeps the chunk sizes valid.
    let n = n.max(1);
    let task = n * (CHUNK / n).max(1);
    out.par_chunks_mut(task)
        .zip(src.par_chunks(task))
        .for_each(|(dst, src)| {
            let mut exps = vec![0f32; n];
            for (d, s) in dst.chunks_mut(n).zip(src.chunks(n)) {
                row(s, d, &mut exps[..s.len()]);
            }
        });
    out
}

struct CpuSoftmax;

impl CustomOp1 for CpuSoftmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("softmax-last-dim: the CPU kernel takes a contiguous input");
        };
        let n = l.dims().last().copied().unwrap_or(1);
        let out = match s {
            CpuStorage::BF16(x) => CpuStorage::BF16(rows(&x[a..b], n, row_bf16)),
            CpuStorage::F16(x) => CpuStorage::F16(rows(&x[a..b], n, row_f16)),
            CpuStorage::F32(x) => CpuStorage::F32(rows(&x[a..b], n, row_f32)),
            other => candle_core::bail!("softmax-last-dim: no CPU kernel for {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn reference(row: &[f32]) -> Vec<f64> {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let exp: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        exp.iter().map(|e| e / sum).collect()
    }

    #[test]
    fn bf16_rows_are_summed_in_f32_and_rounded_once() {
        // 700 near-equal keys: each probability is ~1/700, so a sum kept in bf16 (8 bits of
        // mantissa) stalls long before the end of the row and every output comes out too big.
        let n = 700;
        let values: Vec<f32> = (0..2 * n).map(|i| ((i * 37) % 11) as f32 * 0.01).collect();
        let x = Tensor::from_vec(values.clone(), (2, n), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let widened: Vec<f32> = x
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got = softmax_last_dim(&x).unwrap().to_dtype(DType::F32).unwrap();
        let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
        for (r, row) in got.iter().enumerate() {
            let want = reference(&widened[r * n..(r + 1) * n]);
            for (g, w) in row.iter().zip(&want) {
                assert!(((*g as f64) - w).abs() <= w / 128.0, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn every_kernel_path_gives_the_same_bits() {
        use crate::ops::cpu::kernel_path::KernelPath;
        // Lengths around the lanes, with masked keys among them.
        for n in [1, 15, 16, 17, 129, 700] {
            let src: Vec<f32> = (0..n)
                .map(|i| match i % 7 {
                    3 => f32::NEG_INFINITY,
                    r => (i * 31 % 17) as f32 * 0.37 - r as f32,
                })
                .collect();
            let half: Vec<bf16> = src.iter().map(|&v| bf16::from_f32(v)).collect();
            let sixteen: Vec<f16> = src.iter().map(|&v| f16::from_f32(v)).collect();
            let mut want_f16 = vec![f16::ZERO; n];
            let mut exps = vec![0f32; n];
            row_f16::on(KernelPath::Portable, &sixteen, &mut want_f16, &mut exps);
            let (mut want, mut want_bf16) = (vec![0f32; n], vec![bf16::ZERO; n]);
            row_f32::on(KernelPath::Portable, &src, &mut want, &mut exps);
            row_bf16::on(KernelPath::Portable, &half, &mut want_bf16, &mut exps);
            let sum: f64 = want.iter().map(|&p| p as f64).sum();
            assert!((sum - 1.0).abs() < 1e-6, "n={n}: sums to {sum}");
            assert!(
                want.iter().skip(3).step_by(7).all(|&p| p == 0.0),
                "n={n}: a masked key has weight"
            );
            for path in KernelPath::supported() {
                let (mut got, mut got_bf16) = (vec![0f32; n], vec![bf16::ZERO; n]);
                row_f32::on(path, &src, &mut got, &mut exps);
                row_bf16::on(path, &half, &mut got_bf16, &mut exps);
                assert_eq!(got, want, "{path}, n={n}");
                assert_eq!(got_bf16, want_bf16, "{path}, n={n}");
                let mut got_f16 = vec![f16::ZERO; n];
                row_f16::on(path, &sixteen, &mut got_f16, &mut exps);
                assert_eq!(got_f16, want_f16, "{path}, n={n}");
            }
        }
    }

    #[test]
    fn f32_matches_candle_nn() {
        let x = Tensor::randn(0f32, 3.0, (3, 5, 129), &Device::Cpu).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
        let diff = (ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }
}
