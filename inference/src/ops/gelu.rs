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
        return x.contiguous()?.apply_op1_no_bwd(&CpuGelu);
    }
    x.gelu()
}

/// `0.5 x (1 + tanh(u))` with `u = √(2/π) (x + 0.044715 x³)`, in f32, as `x / (1 + e^(-2u))`.
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

fn map<T: Copy + Send + Sync>(src: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = src.to_vec();
    out.par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = f(*v)));
    out
}

struct CpuGelu;

impl CustomOp1 for CpuGelu {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("gelu-tanh: the CPU kernel takes a contiguous input");
        };
        let out = match s {
            CpuStorage::BF16(x) => {
                CpuStorage::BF16(map(&x[a..b], |v| bf16::from_f32(gelu(v.to_f32()))))
            }
            CpuStorage::F32(x) => CpuStorage::F32(map(&x[a..b], gelu)),
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
}
