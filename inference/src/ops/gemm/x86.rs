//! AVX-512 kernels. bf16: `vdpbf16ps` multiplies bf16 pairs exactly and accumulates in f32, 32
//! products per instruction, straight from the bf16 weights. f32: fused multiply-adds, 16 lanes.

use std::arch::x86_64::*;
use std::ops::Range;

use half::bf16;

/// Rows of `x` kept in cache while tiles of `w` stream past them.
const BLOCK_ROWS: usize = 64;
/// The register tile: `MR` rows of `x` by `NR` rows of `w`, 16 accumulators.
const MR: usize = 4;
const NR: usize = 4;

/// One element type's vector loads and multiply-accumulate.
trait Lanes {
    type Elem;
    type Vector: Copy;
    const LANES: usize;
    unsafe fn load(p: *const Self::Elem) -> Self::Vector;
    /// The first `n < LANES` elements, zeros after.
    unsafe fn load_head(p: *const Self::Elem, n: usize) -> Self::Vector;
    unsafe fn mul_add(acc: __m512, a: Self::Vector, b: Self::Vector) -> __m512;
}

struct Bf16;

impl Lanes for Bf16 {
    type Elem = bf16;
    type Vector = __m512bh;
    const LANES: usize = 32;

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
    unsafe fn mul_add(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
        _mm512_dpbf16_ps(acc, a, b)
    }
}

struct F32;

impl Lanes for F32 {
    type Elem = f32;
    type Vector = __m512;
    const LANES: usize = 16;

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
    unsafe fn mul_add(acc: __m512, a: __m512, b: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, acc)
    }
}

pub fn has_avx512_bf16() -> bool {
    has_avx512() && is_x86_feature_detected!("avx512bf16")
}

pub fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// bf16 `x · w[rows]ᵀ` into `acc` `(m, rows.len())`. Only called after [`has_avx512_bf16`].
pub fn bf16_rows(x: &[bf16], w: &[bf16], k: usize, m: usize, rows: Range<usize>, acc: &mut [f32]) {
    assert!(has_avx512_bf16());
    assert!(x.len() >= m * k && w.len() >= rows.end * k && acc.len() >= m * rows.len());
    // SAFETY: the CPU features are checked above and every pointer the tiles form stays
    // inside the slices whose lengths are asserted above.
    unsafe { rows_bf16(x.as_ptr(), w.as_ptr(), k, m, rows, acc) }
}

/// f32 `x · w[rows]ᵀ` into `acc` `(m, rows.len())`. Only called after [`has_avx512`].
pub fn f32_rows(x: &[f32], w: &[f32], k: usize, m: usize, rows: Range<usize>, acc: &mut [f32]) {
    assert!(has_avx512());
    assert!(x.len() >= m * k && w.len() >= rows.end * k && acc.len() >= m * rows.len());
    // SAFETY: as for `bf16_rows`.
    unsafe { rows_f32(x.as_ptr(), w.as_ptr(), k, m, rows, acc) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn rows_bf16(
    x: *const bf16,
    w: *const bf16,
    k: usize,
    m: usize,
    rows: Range<usize>,
    acc: &mut [f32],
) {
    rows_impl::<Bf16>(x, w, k, m, rows, acc)
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn rows_f32(
    x: *const f32,
    w: *const f32,
    k: usize,
    m: usize,
    rows: Range<usize>,
    acc: &mut [f32],
) {
    rows_impl::<F32>(x, w, k, m, rows, acc)
}

macro_rules! tile_for {
    ($mr:expr, $nr:expr, $args:expr, $(($a:literal, $b:literal)),*) => {
        match ($mr, $nr) {
            $(($a, $b) => {
                let (x, w, k, out, stride) = $args;
                tile::<L, $a, $b>(x, w, k, out, stride)
            })*
            _ => unreachable!("tile sizes are at most {MR}x{NR}"),
        }
    };
}

#[inline(always)]
unsafe fn rows_impl<L: Lanes>(
    x: *const L::Elem,
    w: *const L::Elem,
    k: usize,
    m: usize,
    rows: Range<usize>,
    acc: &mut [f32],
) {
    let width = rows.len();
    // A few rows of `x` stay in L1 while the rows of `w` are read one after another: one
    // sequential stream, which the prefetchers follow best. Interleaving rows of `w` in
    // register tiles halved the bandwidth of a decode step.
    if m <= MR {
        for j in rows.clone() {
            let out = acc.as_mut_ptr().add(j - rows.start);
            let wj = w.add(j * k);
            match m {
                1 => *out = dot::<L>(x, wj, k),
                2 => tile::<L, 2, 1>(x, wj, k, out, width),
                3 => tile::<L, 3, 1>(x, wj, k, out, width),
                _ => tile::<L, 4, 1>(x, wj, k, out, width),
            }
        }
        return;
    }
    for block in (0..m).step_by(BLOCK_ROWS) {
        let block_end = (block + BLOCK_ROWS).min(m);
        for j in rows.clone().step_by(NR) {
            let nr = (rows.end - j).min(NR);
            for i in (block..block_end).step_by(MR) {
                let mr = (block_end - i).min(MR);
                let out = acc.as_mut_ptr().add(i * width + (j - rows.start));
                let args = (x.add(i * k), w.add(j * k), k, out, width);
                tile_for!(
                    mr,
                    nr,
                    args,
                    (1, 1),
                    (1, 2),
                    (1, 3),
                    (1, 4),
                    (2, 1),
                    (2, 2),
                    (2, 3),
                    (2, 4),
                    (3, 1),
                    (3, 2),
                    (3, 3),
                    (3, 4),
                    (4, 1),
                    (4, 2),
                    (4, 3),
                    (4, 4)
                );
            }
        }
    }
}

/// `x · w` over `k` elements, row by row: consecutive rows of `w` are one sequential stream.
#[inline(always)]
unsafe fn dot<L: Lanes>(x: *const L::Elem, w: *const L::Elem, k: usize) -> f32 {
    const CHAINS: usize = 4;
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    let step = L::LANES * CHAINS;
    let full = k / step * step;
    let mut p = 0;
    while p < full {
        for (c, a) in acc.iter_mut().enumerate() {
            let o = p + c * L::LANES;
            *a = L::mul_add(*a, L::load(x.add(o)), L::load(w.add(o)));
        }
        p += step;
    }
    while p + L::LANES <= k {
        acc[0] = L::mul_add(acc[0], L::load(x.add(p)), L::load(w.add(p)));
        p += L::LANES;
    }
    if p < k {
        let n = k - p;
        acc[1] = L::mul_add(acc[1], L::load_head(x.add(p), n), L::load_head(w.add(p), n));
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// `out[r * stride + c] = x[r] · w[c]` for `R` rows of `x` and `C` rows of `w`, each `k` long.
// Index loops over the const-sized register arrays are what unrolls into registers.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const C: usize>(
    x: *const L::Elem,
    w: *const L::Elem,
    k: usize,
    out: *mut f32,
    stride: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut wv = [L::load_head(w, 0); C];
    let full = k / L::LANES * L::LANES;
    let mut p = 0;
    while p < full {
        for c in 0..C {
            wv[c] = L::load(w.add(c * k + p));
        }
        for r in 0..R {
            let xv = L::load(x.add(r * k + p));
            for c in 0..C {
                acc[r][c] = L::mul_add(acc[r][c], xv, wv[c]);
            }
        }
        p += L::LANES;
    }
    if p < k {
        let n = k - p;
        for c in 0..C {
            wv[c] = L::load_head(w.add(c * k + p), n);
        }
        for r in 0..R {
            let xv = L::load_head(x.add(r * k + p), n);
            for c in 0..C {
                acc[r][c] = L::mul_add(acc[r][c], xv, wv[c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            *out.add(r * stride + c) = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
}
