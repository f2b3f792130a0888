//! AVX-512 for [`simd`](super::simd). bf16: `vdpbf16ps` multiplies bf16 pairs exactly and
//! accumulates in f32, 32 products per instruction, straight from the bf16 weights. f32: fused
//! multiply-adds, 16 lanes. Sums are stored into the output by gathers.

use std::arch::x86_64::*;
use std::ops::Range;

use half::bf16;

use super::simd::{self, Lanes, Product, Widen};
use super::KernelPath;

fn detected() -> bool {
    KernelPath::Avx512.is_supported()
}

pub(super) struct Bf16;

/// The f32 sums both element types share.
macro_rules! sums {
    () => {
        type Acc = __m512;
        const PANEL: usize = 16;
        const TILE_ROWS: usize = 6;
        const TILE_PANELS: usize = 4;

        fn detected() -> bool {
            detected()
        }

        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }

        #[inline(always)]
        unsafe fn load_sums(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }

        #[inline(always)]
        unsafe fn store_sums(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }

        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }

        #[inline(always)]
        unsafe fn reduce(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
    };
}

// SAFETY: every function is only called after `detected`, which checks AVX-512 F/BW/VL/BF16.
unsafe impl Lanes for Bf16 {
    type Elem = bf16;
    type Vector = __m512bh;
    const LANES: usize = 32;
    const GRANULE: usize = 2;
    sums!();

    #[inline(always)]
    unsafe fn load(p: *const bf16) -> __m512bh {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast()))
    }

    #[inline(always)]
    unsafe fn load_head(p: *const bf16, n: usize) -> __m512bh {
        let mask: __mmask32 = (1u32 << n) - 1;
        std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(mask, p.cast()))
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const bf16) -> __m512bh {
        let pair = p.cast::<i32>().read_unaligned();
        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair))
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const bf16) -> __m512bh {
        let low = i32::from(p.cast::<u16>().read_unaligned());
        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(low))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
        _mm512_dpbf16_ps(acc, a, b)
    }

    unsafe fn columns(product: &Product<Self>, w: &[bf16], cols: Range<usize>, acc: &mut [f32]) {
        columns_bf16(product, w, cols, acc)
    }
}

pub(super) struct F32;

// SAFETY: as for `Bf16`.
unsafe impl Lanes for F32 {
    type Elem = f32;
    type Vector = __m512;
    const LANES: usize = 16;
    const GRANULE: usize = 1;
    sums!();

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }

    #[inline(always)]
    unsafe fn load_head(p: *const f32, n: usize) -> __m512 {
        let mask: __mmask16 = (1u16 << n) - 1;
        _mm512_maskz_loadu_ps(mask, p)
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m512 {
        _mm512_set1_ps(p.read())
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const f32) -> __m512 {
        Self::broadcast(p)
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m512, a: __m512, b: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, acc)
    }

    unsafe fn columns(product: &Product<Self>, w: &[f32], cols: Range<usize>, acc: &mut [f32]) {
        columns_f32(product, w, cols, acc)
    }
}

#[inline(always)]
fn lane_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

// SAFETY: as for `Lanes`.
unsafe impl Widen for Bf16 {
    #[inline(always)]
    unsafe fn load_widened(p: *const bf16, n: usize) -> __m512 {
        let half = _mm256_maskz_loadu_epi16(lane_mask(n), p.cast());
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(half)))
    }

    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, acc: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, acc)
    }

    #[inline(always)]
    unsafe fn store_narrowed(p: *mut bf16, v: __m512, n: usize) {
        let narrow = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
        _mm256_mask_storeu_epi16(p.cast(), lane_mask(n), narrow);
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

/// An output element type of the gather stores.
pub(super) trait Sink: Copy {
    /// Writes the lanes of `v` that `mask` selects to `out[..16]`.
    unsafe fn put(out: *mut Self, v: __m512, mask: __mmask16);
}

impl Sink for bf16 {
    #[inline(always)]
    unsafe fn put(out: *mut bf16, v: __m512, mask: __mmask16) {
        let narrow = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
        _mm512_mask_storeu_epi16(out.cast(), mask.into(), _mm512_castsi256_si512(narrow));
    }
}

impl Sink for f32 {
    #[inline(always)]
    unsafe fn put(out: *mut f32, v: __m512, mask: __mmask16) {
        _mm512_mask_storeu_ps(out, mask, v);
    }
}

/// [`super::Store`] for bf16 outputs; only called after [`detected`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(super) unsafe fn store_bf16(
    acc: &[f32],
    ld: usize,
    cols: usize,
    m: usize,
    out: *mut bf16,
    n: usize,
) {
    store_impl(acc, ld, cols, m, out, n)
}

/// [`super::Store`] for f32 outputs; only called after [`detected`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn store_f32(
    acc: &[f32],
    ld: usize,
    cols: usize,
    m: usize,
    out: *mut f32,
    n: usize,
) {
    store_impl(acc, ld, cols, m, out, n)
}

/// Each output row takes 16 columns at a time by one gather: the 16 cache lines of a group of
/// columns serve 16 consecutive rows from L1.
#[inline(always)]
unsafe fn store_impl<T: Sink>(
    acc: &[f32],
    ld: usize,
    cols: usize,
    m: usize,
    out: *mut T,
    n: usize,
) {
    const GROUP: usize = 16;
    assert!(acc.len() >= cols * ld && m <= ld, "acc is not (cols, ld)");
    let stride = i32::try_from(ld * (GROUP - 1) * 4).map(|_| ld as i32);
    let stride = stride.expect("a column group fits 32-bit offsets");
    let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let offsets = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(stride));
    for c0 in (0..cols).step_by(GROUP) {
        let mask: __mmask16 = (((1u32 << (cols - c0).min(GROUP)) - 1) & 0xffff) as u16;
        let base = acc.as_ptr().add(c0 * ld);
        for i in 0..m {
            let v = _mm512_mask_i32gather_ps::<4>(
                _mm512_setzero_ps(),
                mask,
                offsets,
                base.add(i).cast(),
            );
            T::put(out.add(i * n + c0), v, mask);
        }
    }
}

simd::entry_points!("avx512f,avx512bw,avx512vl,avx512bf16");
