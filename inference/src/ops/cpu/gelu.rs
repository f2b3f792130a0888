//! The `gelu_tanh` op on the CPU: Candle 0.11 evaluates it on one core, rounding every
//! intermediate to the half type; this runs on every core in f32 and rounds once, as GPUs do.
//! libm's `tanhf` took a sixth of a 1B prefill, so the tanh is an exp the loop can vectorize
//! ([`elementwise`](super::elementwise)). Other backends use Candle's kernel.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

use super::elementwise::{exp, narrow, per_kernel_path, widen};

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

pub fn gelu_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::BF16 | DType::F32) {
        // Rows with unit stride (the gate half of the fused gate/up projection) are read where
        // they are; anything else is copied first.
        let x = if x.stride().last().is_none_or(|&s| s == 1) {
            x.clone()
        } else {
            x.contiguous()?
        };
        return x.apply_op1_no_bwd(&CpuGelu);
    }
    x.gelu()
}

/// `0.5 x (1 + tanh(u))` with `u = √(2/π) (x + 0.044715 x³)`, in f32, as `x / (1 + e^(-2u))`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// Where each row (the last dim, unit stride) of a view starts, in order.
fn row_starts(l: &Layout) -> Vec<usize> {
    let lead = l.dims().len().saturating_sub(1);
    let mut starts = vec![l.start_offset()];
    for (&dim, &stride) in l.dims()[..lead].iter().zip(&l.stride()[..lead]) {
        starts = starts
            .iter()
            .flat_map(|&s| (0..dim).map(move |i| s + i * stride))
            .collect();
    }
    starts
}

/// `f` over every row of a view whose rows have unit stride, into a new contiguous buffer.
fn map<T: Copy + Default + Send + Sync>(
    src: &[T],
    l: &Layout,
    f: impl Fn(&[T], &mut [T]) + Sync,
) -> Vec<T> {
    let len = l.dims().last().copied().unwrap_or(1);
    let starts = row_starts(l);
    let mut out = vec![T::default(); starts.len() * len];
    if len == 0 {
        return out;
    }
    let rows_per_task = (CHUNK / len).max(1);
    out.par_chunks_mut(rows_per_task * len)
        .zip(starts.par_chunks(rows_per_task))
        .for_each(|(rows, starts)| {
            for (row, &start) in rows.chunks_exact_mut(len).zip(starts) {
                f(&src[start..start + len], row);
            }
        });
    out
}

per_kernel_path! {
    /// One row of gelu in bf16. Every element is computed alone, so every path gives the same
    /// bits.
    fn gelu_bf16(src: &[bf16], dst: &mut [bf16]) {
        for (o, &v) in dst.iter_mut().zip(src) {
            *o = narrow(gelu(widen(v)));
        }
    }
}

per_kernel_path! {
    /// One row of gelu in f32, as [`gelu_bf16`].
    fn gelu_f32(src: &[f32], dst: &mut [f32]) {
        for (o, &v) in dst.iter_mut().zip(src) {
            *o = gelu(v);
        }
    }
}

struct CpuGelu;

impl CustomOp1 for CpuGelu {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        if l.stride().last().is_some_and(|&s| s != 1) {
            candle_core::bail!("gelu-tanh: the CPU kernel takes rows of unit stride");
        }
        let out = match s {
            CpuStorage::BF16(x) => CpuStorage::BF16(map(x, l, gelu_bf16)),
            CpuStorage::F32(x) => CpuStorage::F32(map(x, l, gelu_f32)),
            other => candle_core::bail!("gelu-tanh: no CPU kernel for {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_the_tanh_form_in_f64() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let xf = x as f64;
            let u = (2.0 / std::f64::consts::PI).sqrt() * (xf + 0.044715 * xf * xf * xf);
            let want = 0.5 * xf * (1.0 + u.tanh());
            let got = gelu(x) as f64;
            // Relative, even where the tanh form in f32 cancels (large negative x).
            assert!(
                (got - want).abs() <= 2e-6 * want.abs() + 1e-12,
                "gelu({x}) = {got}, not {want}"
            );
            x += 0.0071;
        }
    }

    #[test]
    fn every_kernel_path_gives_the_same_bits() {
        use crate::ops::cpu::kernel_path::KernelPath;
        let src: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.031).collect();
        let half: Vec<bf16> = src.iter().map(|&v| bf16::from_f32(v)).collect();
        let (mut want, mut want_bf16) = (vec![0f32; 1000], vec![bf16::ZERO; 1000]);
        gelu_f32::on(KernelPath::Portable, &src, &mut want);
        gelu_bf16::on(KernelPath::Portable, &half, &mut want_bf16);
        for path in KernelPath::supported() {
            let (mut got, mut got_bf16) = (vec![0f32; 1000], vec![bf16::ZERO; 1000]);
            gelu_f32::on(path, &src, &mut got);
            gelu_bf16::on(path, &half, &mut got_bf16);
            assert_eq!(got, want, "{path}");
            assert_eq!(got_bf16, want_bf16, "{path}");
        }
    }

    #[test]
    fn a_view_of_rows_is_read_in_place() {
        let device = candle_core::Device::Cpu;
        let x = Tensor::arange(0f32, 24.0, &device).unwrap();
        let x = (x / 6.0).unwrap().reshape((2, 3, 4)).unwrap();
        for view in [
            x.narrow(2, 1, 2).unwrap(),
            x.narrow(1, 1, 2).unwrap(),
            x.transpose(0, 1).unwrap(),
            x.clone(),
        ] {
            let got: Vec<f32> = gelu_tanh(&view)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f32> = view
                .contiguous()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f32> = want.into_iter().map(gelu).collect();
            assert_eq!(got, want, "{:?} {:?}", view.dims(), view.stride());
        }
    }
}
