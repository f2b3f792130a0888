//! The `gelu_tanh` op on the CPU: Candle 0.11 evaluates it on one core, rounding every
//! intermediate to the half type; this runs on every core in f32 and rounds once, as GPUs do.
//! libm's `tanhf` took a sixth of a 1B prefill, so the tanh is an exp the loop can vectorize.
//! Other backends use Candle's kernel.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

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

/// `e^x` within about 2 ulp, without branches or library calls so that loops over it
/// vectorize: `2^n · e^r` with `|r| <= ln 2 / 2` and a degree-6 Taylor polynomial.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Past these e^x overflows or leaves the normal range; gelu needs only 0 and ∞ there.
    let x = x.clamp(-87.0, 88.0);
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer in any SIMD width.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln 2 in two parts (Cody and Waite), so that n · ln 2 loses no bits of r.
    let r = (x - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
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

/// One row of gelu, compiled for the active [`KernelPath`]: the loops below vectorize to 16
/// lanes with AVX-512, 8 with AVX2 and 4 with the baseline SSE2 or NEON. Every element is
/// computed alone, so every path gives the same bits.
macro_rules! row_kernel {
    ($name:ident, $t:ty, $f:expr) => {
        fn $name(src: &[$t], dst: &mut [$t]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw")]
                unsafe fn avx512(src: &[$t], dst: &mut [$t]) {
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = $f(v);
                    }
                }

                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2(src: &[$t], dst: &mut [$t]) {
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = $f(v);
                    }
                }

                use super::kernel_path::{active, KernelPath};
                match active() {
                    // SAFETY: the active path is one the CPU supports.
                    KernelPath::Avx512 => return unsafe { avx512(src, dst) },
                    // SAFETY: as above.
                    KernelPath::Avx2 => return unsafe { avx2(src, dst) },
                    _ => {}
                }
            }
            for (o, &v) in dst.iter_mut().zip(src) {
                *o = $f(v);
            }
        }
    };
}

row_kernel!(gelu_bf16, bf16, |v| narrow(gelu(widen(v))));
row_kernel!(gelu_f32, f32, gelu);

#[inline(always)]
fn widen(v: bf16) -> f32 {
    f32::from_bits(u32::from(v.to_bits()) << 16)
}

/// `bf16::from_f32` (round to nearest even, NaN kept NaN) without branches, so that the loop
/// around it vectorizes.
#[inline(always)]
fn narrow(x: f32) -> bf16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let quiet_nan = (bits >> 16) | 0x40;
    bf16::from_bits(if x.is_nan() { quiet_nan } else { rounded } as u16)
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
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 3.0 * f32::EPSILON as f64 * want,
                "exp({x}) = {got}, not {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

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
    fn the_branch_free_bf16_rounding_is_half_s() {
        let mut bits = 0u32;
        loop {
            let x = f32::from_bits(bits);
            let (got, want) = (narrow(x), bf16::from_f32(x));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e} ({bits:#x}): {got} vs {want}"
            );
            assert!(widen(want) == want.to_f32() || want.is_nan() && widen(want).is_nan());
            match bits.checked_add(0x1234) {
                Some(b) => bits = b,
                None => break,
            }
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
