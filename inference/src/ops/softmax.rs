//! `softmax_last_dim` on the CPU: candle-nn 0.11 sums the exponentials in the tensor's own
//! dtype, so in bf16 a row of a few hundred keys loses whole percents; this works in f32 per
//! row and rounds once, as candle-nn's CUDA and Metal kernels do. The model can then skip the
//! casts around it. Other backends use candle-nn's kernel.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// Elements per parallel task, in whole rows.
const CHUNK: usize = 16 * 1024;

pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::BF16 | DType::F16 | DType::F32) {
        return x.contiguous()?.apply_op1_no_bwd(&CpuSoftmax);
    }
    candle_nn::ops::softmax_last_dim(x)
}

/// Softmax of every `n`-long row of `src`, computed in f32.
fn rows<T: Copy + Send + Sync>(
    src: &[T],
    n: usize,
    widen: impl Fn(T) -> f32 + Sync,
    narrow: impl Fn(f32) -> T + Sync,
) -> Vec<T> {
    let mut out = src.to_vec();
    let rows_per_task = (CHUNK / n.max(1)).max(1);
    out.par_chunks_mut(n * rows_per_task).for_each(|task| {
        let mut exp = vec![0f32; n];
        for row in task.chunks_mut(n) {
            let max = row
                .iter()
                .map(|&v| widen(v))
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (e, &v) in exp.iter_mut().zip(row.iter()) {
                *e = (widen(v) - max).exp();
                sum += *e;
            }
            for (o, e) in row.iter_mut().zip(&exp) {
                *o = narrow(e / sum);
            }
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
            CpuStorage::BF16(x) => {
                CpuStorage::BF16(rows(&x[a..b], n, bf16::to_f32, bf16::from_f32))
            }
            CpuStorage::F16(x) => CpuStorage::F16(rows(&x[a..b], n, f16::to_f32, f16::from_f32)),
            CpuStorage::F32(x) => CpuStorage::F32(rows(&x[a..b], n, |v| v, |v| v)),
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
