//! What the element-wise CPU kernels of our own share: an `exp` and bf16 conversions without
//! branches or library calls, so that the loops around them vectorize, and
//! [`per_kernel_path!`], which compiles such a loop once per [`KernelPath`](super::kernel_path::KernelPath).

use half::bf16;

/// `e^x` within about 2 ulp: `2^n · e^r` with `|r| <= ln 2 / 2` and a degree-6 Taylor
/// polynomial. Below -87, where e^x leaves the normal range, it is 0 (a softmax's masked
/// keys); above 88 it is finite and huge, which is all that gelu needs there.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let clamped = x.clamp(-87.0, 88.0);
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer in any SIMD width.
    const ROUND: f32 = 12_582_912.0;
    let n = (clamped * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln 2 in two parts (Cody and Waite), so that n · ln 2 loses no bits of r.
    let r = (clamped - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let e = p * f32::from_bits(((n as i32 + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

#[inline(always)]
pub(super) fn widen(v: bf16) -> f32 {
    f32::from_bits(u32::from(v.to_bits()) << 16)
}

/// `bf16::from_f32` (round to nearest even, NaN kept NaN) without branches.
#[inline(always)]
pub(super) fn narrow(x: f32) -> bf16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let quiet_nan = (bits >> 16) | 0x40;
    bf16::from_bits(if x.is_nan() { quiet_nan } else { rounded } as u16)
}

/// A function whose body is compiled for each x86-64 kernel path (AVX-512 with 16 lanes,
/// AVX2 with 8) and for the baseline (SSE2, or NEON on aarch64): `name(args)` runs the one
/// that [`kernel_path::active`](super::kernel_path::active) names, `name::on(path, args)` a
/// given one. Bodies that compute each element alone, or keep their sums in lanes, give the
/// same bits on every path.
macro_rules! per_kernel_path {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            $name::on($crate::ops::cpu::kernel_path::active(), $($arg),*)
        }

        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::ops::cpu::kernel_path::KernelPath;

            /// The function on `path`, which the CPU must support.
            pub(super) fn on(path: KernelPath, $($arg: $ty),*) {
                assert!(path.is_supported(), "the CPU lacks the {path} kernels");
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx512bw")]
                    unsafe fn avx512($($arg: $ty),*) $body

                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2($($arg: $ty),*) $body

                    match path {
                        // SAFETY: the CPU supports the path (asserted above).
                        KernelPath::Avx512 => return unsafe { avx512($($arg),*) },
                        // SAFETY: as above.
                        KernelPath::Avx2 => return unsafe { avx2($($arg),*) },
                        _ => {}
                    }
                }
                $body
            }
        }
    };
}
pub(super) use per_kernel_path;

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
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(1000.0).is_finite());
        assert!(exp(f32::NAN).is_nan());
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
}
