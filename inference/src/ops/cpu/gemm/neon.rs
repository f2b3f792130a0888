//! aarch64 Advanced SIMD for [`simd`](super::simd): 4 f32 lanes, 32 registers. bf16 pairs are
//! split into their even and odd elements, each widened to f32 by a shift or a mask (exact),
//! and multiplied by two fused multiply-adds; where the CPU has the bf16 extension, one
//! `bfdot` multiplies the pairs instead ([`Bf16Dot`]).

use std::arch::aarch64::*;
use std::ops::Range;

use half::bf16;

use super::simd::{self, Lanes, Product, Widen};
use super::KernelPath;

/// The f32 sums every element type shares, with the type's register tile (its sums, the
/// panels' loads and a broadcast within the 32 registers) and the path it needs.
macro_rules! sums {
    ($rows:expr, $panels:expr, $path:expr) => {
        type Acc = float32x4_t;
        const PANEL: usize = 4;
        const TILE_ROWS: usize = $rows;
        const TILE_PANELS: usize = $panels;

        fn detected() -> bool {
            $path.is_supported()
        }

        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            vdupq_n_f32(0.0)
        }

        #[inline(always)]
        unsafe fn load_sums(p: *const f32) -> float32x4_t {
            vld1q_f32(p)
        }

        #[inline(always)]
        unsafe fn store_sums(p: *mut f32, v: float32x4_t) {
            vst1q_f32(p, v)
        }

        #[inline(always)]
        unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            vaddq_f32(a, b)
        }

        #[inline(always)]
        unsafe fn reduce(v: float32x4_t) -> f32 {
            vaddvq_f32(v)
        }
    };
}

pub(super) struct Bf16;

/// 4 bf16 pairs widened: the even elements and the odd ones, each as 4 f32.
#[derive(Clone, Copy)]
pub(super) struct Pairs(float32x4_t, float32x4_t);

#[inline(always)]
unsafe fn split(v: uint32x4_t) -> Pairs {
    let even = vshlq_n_u32::<16>(v);
    let odd = vandq_u32(v, vdupq_n_u32(0xffff_0000));
    Pairs(vreinterpretq_f32_u32(even), vreinterpretq_f32_u32(odd))
}

// SAFETY: every function is only called after `detected`, which checks NEON.
unsafe impl Lanes for Bf16 {
    type Elem = bf16;
    type Vector = Pairs;
    const LANES: usize = 8;
    const GRANULE: usize = 2;
    sums!(6, 3, KernelPath::Neon);

    #[inline(always)]
    unsafe fn load(p: *const bf16) -> Pairs {
        split(vld1q_u32(p.cast()))
    }

    #[inline(always)]
    unsafe fn load_head(p: *const bf16, n: usize) -> Pairs {
        let mut head = [bf16::ZERO; 8];
        std::ptr::copy_nonoverlapping(p, head.as_mut_ptr(), n);
        Self::load(head.as_ptr())
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const bf16) -> Pairs {
        split(vdupq_n_u32(p.cast::<u32>().read_unaligned()))
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const bf16) -> Pairs {
        split(vdupq_n_u32(u32::from(p.cast::<u16>().read_unaligned())))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: float32x4_t, a: Pairs, b: Pairs) -> float32x4_t {
        vfmaq_f32(vfmaq_f32(acc, a.0, b.0), a.1, b.1)
    }

    unsafe fn columns(product: &Product<Self>, w: &[bf16], cols: Range<usize>, acc: &mut [f32]) {
        columns_bf16(product, w, cols, acc)
    }
}

/// bf16 pairs multiplied by `bfdot`, which adds both products of each pair to one f32 lane, as
/// AVX-512's `vdpbf16ps` does. Rust has no stable intrinsic for it yet, hence the assembly.
pub(super) struct Bf16Dot;

// SAFETY: every function is only called after `detected`, which checks NEON and BF16.
unsafe impl Lanes for Bf16Dot {
    type Elem = bf16;
    type Vector = uint16x8_t;
    const LANES: usize = 8;
    const GRANULE: usize = 2;
    sums!(6, 4, KernelPath::NeonBf16);

    #[inline(always)]
    unsafe fn load(p: *const bf16) -> uint16x8_t {
        vld1q_u16(p.cast())
    }

    #[inline(always)]
    unsafe fn load_head(p: *const bf16, n: usize) -> uint16x8_t {
        let mut head = [bf16::ZERO; 8];
        std::ptr::copy_nonoverlapping(p, head.as_mut_ptr(), n);
        Self::load(head.as_ptr())
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const bf16) -> uint16x8_t {
        vreinterpretq_u16_u32(vdupq_n_u32(p.cast::<u32>().read_unaligned()))
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const bf16) -> uint16x8_t {
        let low = u32::from(p.cast::<u16>().read_unaligned());
        vreinterpretq_u16_u32(vdupq_n_u32(low))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: float32x4_t, a: uint16x8_t, b: uint16x8_t) -> float32x4_t {
        let mut acc = acc;
        std::arch::asm!(
            ".arch_extension bf16",
            "bfdot {acc:v}.4s, {a:v}.8h, {b:v}.8h",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
        acc
    }

    unsafe fn columns(product: &Product<Self>, w: &[bf16], cols: Range<usize>, acc: &mut [f32]) {
        columns_bf16_dot(product, w, cols, acc)
    }
}

#[target_feature(enable = "neon,bf16")]
unsafe fn columns_bf16_dot(
    product: &Product<Bf16Dot>,
    w: &[bf16],
    cols: Range<usize>,
    acc: &mut [f32],
) {
    simd::columns(product, w, cols, acc)
}

pub(super) struct F32;

// SAFETY: as for `Bf16`.
unsafe impl Lanes for F32 {
    type Elem = f32;
    type Vector = float32x4_t;
    const LANES: usize = 4;
    const GRANULE: usize = 1;
    sums!(6, 4, KernelPath::Neon);

    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        vld1q_f32(p)
    }

    #[inline(always)]
    unsafe fn load_head(p: *const f32, n: usize) -> float32x4_t {
        let mut head = [0f32; 4];
        std::ptr::copy_nonoverlapping(p, head.as_mut_ptr(), n);
        vld1q_f32(head.as_ptr())
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> float32x4_t {
        vld1q_dup_f32(p)
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const f32) -> float32x4_t {
        Self::broadcast(p)
    }

    #[inline(always)]
    unsafe fn mul_add(acc: float32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vfmaq_f32(acc, a, b)
    }

    unsafe fn columns(product: &Product<Self>, w: &[f32], cols: Range<usize>, acc: &mut [f32]) {
        columns_f32(product, w, cols, acc)
    }
}

// SAFETY: as for `Lanes`.
unsafe impl Widen for Bf16 {
    #[inline(always)]
    unsafe fn load_widened(p: *const bf16, n: usize) -> float32x4_t {
        let half = if n == 4 {
            vld1_u16(p.cast())
        } else {
            let mut head = [0u16; 4];
            std::ptr::copy_nonoverlapping(p.cast::<u16>(), head.as_mut_ptr(), n);
            vld1_u16(head.as_ptr())
        };
        vreinterpretq_f32_u32(vshll_n_u16::<16>(half))
    }

    #[inline(always)]
    unsafe fn splat(v: f32) -> float32x4_t {
        vdupq_n_f32(v)
    }

    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, acc: float32x4_t) -> float32x4_t {
        vfmaq_f32(acc, a, b)
    }

    #[inline(always)]
    unsafe fn store_narrowed(p: *mut bf16, v: float32x4_t, n: usize) {
        let mut sums = [0f32; 4];
        vst1q_f32(sums.as_mut_ptr(), v);
        for (i, &s) in sums.iter().enumerate().take(n) {
            *p.add(i) = bf16::from_f32(s);
        }
    }

    unsafe fn xw(
        x: *const bf16,
        w: *const bf16,
        m: usize,
        n: usize,
        k: usize,
        cols: Range<usize>,
        out: *mut bf16,
    ) {
        xw_bf16(x, w, m, n, k, cols, out)
    }
}

simd::entry_points!("neon");
