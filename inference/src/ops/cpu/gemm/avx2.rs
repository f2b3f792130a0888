//! AVX2 and FMA (x86-64-v3) for [`simd`](super::simd): 8 f32 lanes, 16 registers. bf16 has no
//! product instruction here, so a 256-bit load of bf16 pairs is split into its even and odd
//! elements, each widened to f32 by a shift or a mask (exact), and multiplied by two fused
//! multiply-adds: the same pairs `vdpbf16ps` would take, summed in f32.

use std::arch::x86_64::*;
use std::ops::Range;

use half::bf16;

use super::simd::{self, Lanes, Product, Widen};
use super::KernelPath;

fn detected() -> bool {
    KernelPath::Avx2.is_supported()
}

/// The f32 sums both element types share, with the type's register tile: its sums, the
/// panels' loads, a broadcast (bf16: split in two halves) and bf16's mask within the 16
/// registers.
macro_rules! sums {
    ($rows:expr, $panels:expr) => {
        type Acc = __m256;
        const PANEL: usize = 8;
        const TILE_ROWS: usize = $rows;
        const TILE_PANELS: usize = $panels;

        fn detected() -> bool {
            detected()
        }

        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }

        #[inline(always)]
        unsafe fn load_sums(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }

        #[inline(always)]
        unsafe fn store_sums(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }

        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }

        #[inline(always)]
        unsafe fn reduce(v: __m256) -> f32 {
            let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
        }
    };
}

pub(super) struct Bf16;

/// 8 bf16 pairs widened: the even elements and the odd ones, each as 8 f32.
#[derive(Clone, Copy)]
pub(super) struct Pairs(__m256, __m256);

#[inline(always)]
unsafe fn split(v: __m256i) -> Pairs {
    let even = _mm256_slli_epi32::<16>(v);
    let odd = _mm256_and_si256(v, _mm256_set1_epi32(0xffff_0000_u32 as i32));
    Pairs(_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd))
}

// SAFETY: every function is only called after `detected`, which checks AVX2 and FMA.
unsafe impl Lanes for Bf16 {
    type Elem = bf16;
    type Vector = Pairs;
    const LANES: usize = 16;
    const GRANULE: usize = 2;
    sums!(4, 2);

    #[inline(always)]
    unsafe fn load(p: *const bf16) -> Pairs {
        split(_mm256_loadu_si256(p.cast()))
    }

    #[inline(always)]
    unsafe fn load_head(p: *const bf16, n: usize) -> Pairs {
        let mut head = [bf16::ZERO; 16];
        std::ptr::copy_nonoverlapping(p, head.as_mut_ptr(), n);
        Self::load(head.as_ptr())
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const bf16) -> Pairs {
        split(_mm256_set1_epi32(p.cast::<i32>().read_unaligned()))
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const bf16) -> Pairs {
        split(_mm256_set1_epi32(i32::from(
            p.cast::<u16>().read_unaligned(),
        )))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m256, a: Pairs, b: Pairs) -> __m256 {
        _mm256_fmadd_ps(a.1, b.1, _mm256_fmadd_ps(a.0, b.0, acc))
    }

    unsafe fn columns(product: &Product<Self>, w: &[bf16], cols: Range<usize>, acc: &mut [f32]) {
        columns_bf16(product, w, cols, acc)
    }
}

pub(super) struct F32;

#[inline(always)]
unsafe fn head_mask(n: usize) -> __m256i {
    let lanes = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
}

// SAFETY: as for `Bf16`.
unsafe impl Lanes for F32 {
    type Elem = f32;
    type Vector = __m256;
    const LANES: usize = 8;
    const GRANULE: usize = 1;
    sums!(6, 2);

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }

    #[inline(always)]
    unsafe fn load_head(p: *const f32, n: usize) -> __m256 {
        _mm256_maskload_ps(p, head_mask(n))
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const f32) -> __m256 {
        Self::broadcast(p)
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m256, a: __m256, b: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, acc)
    }

    unsafe fn columns(product: &Product<Self>, w: &[f32], cols: Range<usize>, acc: &mut [f32]) {
        columns_f32(product, w, cols, acc)
    }
}

// SAFETY: as for `Lanes`.
unsafe impl Widen for Bf16 {
    #[inline(always)]
    unsafe fn load_widened(p: *const bf16, n: usize) -> __m256 {
        let half = if n == 8 {
            _mm_loadu_si128(p.cast())
        } else {
            let mut head = [bf16::ZERO; 8];
            std::ptr::copy_nonoverlapping(p, head.as_mut_ptr(), n);
            _mm_loadu_si128(head.as_ptr().cast())
        };
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(half)))
    }

    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }

    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, acc: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, acc)
    }

    #[inline(always)]
    unsafe fn store_narrowed(p: *mut bf16, v: __m256, n: usize) {
        let mut sums = [0f32; 8];
        _mm256_storeu_ps(sums.as_mut_ptr(), v);
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

simd::entry_points!("avx2,fma");
