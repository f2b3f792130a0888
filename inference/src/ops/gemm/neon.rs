//! aarch64 Advanced SIMD for [`simd`](super::simd): 4 f32 lanes, 32 registers. bf16 pairs are
//! split into their even and odd elements, each widened to f32 by a shift or a mask (exact),
//! and multiplied by two fused multiply-adds.

use std::arch::aarch64::*;
use std::ops::Range;

use half::bf16;

use super::simd::{self, Lanes, Product, Widen};
use super::KernelPath;

fn detected() -> bool {
    KernelPath::Neon.is_supported()
}

/// The f32 sums both element types share, with the type's register tile: its sums, the
/// panels' loads and a broadcast within the 32 registers.
macro_rules! sums {
    ($rows:expr, $panels:expr) => {
        type Acc = float32x4_t;
        const PANEL: usize = 4;
        const TILE_ROWS: usize = $rows;
        const TILE_PANELS: usize = $panels;

        fn detected() -> bool {
            detected()
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
    sums!(6, 3);

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

pub(super) struct F32;

// SAFETY: as for `Bf16`.
unsafe impl Lanes for F32 {
    type Elem = f32;
    type Vector = float32x4_t;
    const LANES: usize = 4;
    const GRANULE: usize = 1;
    sums!(6, 4);

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
