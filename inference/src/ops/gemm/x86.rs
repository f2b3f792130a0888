//! AVX-512 BF16 kernels: `vdpbf16ps` multiplies bf16 pairs exactly and accumulates in f32, 32
//! products per instruction, straight from the bf16 weights.

use std::arch::x86_64::*;
use std::ops::Range;

use half::bf16;

/// Rows of `x` kept in cache while tiles of `w` stream past them.
const BLOCK_ROWS: usize = 64;
/// The register tile: `MR` rows of `x` by `NR` rows of `w`, 16 accumulators.
const MR: usize = 4;
const NR: usize = 4;
const LANES: usize = 32;

pub fn has_avx512_bf16() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512bf16")
}

/// bf16 `x · w[rows]ᵀ` into `acc` `(m, rows.len())`. Only called after [`has_avx512_bf16`].
pub fn bf16_rows(x: &[bf16], w: &[bf16], k: usize, m: usize, rows: Range<usize>, acc: &mut [f32]) {
    assert!(has_avx512_bf16());
    assert!(x.len() >= m * k && w.len() >= rows.end * k && acc.len() >= m * rows.len());
    // SAFETY: the CPU features are checked above and every pointer the tiles form stays
    // inside the slices whose lengths are asserted above.
    unsafe { rows_impl(x.as_ptr(), w.as_ptr(), k, m, rows, acc) }
}

macro_rules! tile_for {
    ($mr:expr, $nr:expr, $args:expr, $(($a:literal, $b:literal)),*) => {
        match ($mr, $nr) {
            $(($a, $b) => {
                let (x, w, k, out, stride) = $args;
                tile::<$a, $b>(x, w, k, out, stride)
            })*
            _ => unreachable!("tile sizes are at most {MR}x{NR}"),
        }
    };
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn rows_impl(
    x: *const bf16,
    w: *const bf16,
    k: usize,
    m: usize,
    rows: Range<usize>,
    acc: &mut [f32],
) {
    let width = rows.len();
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

#[inline(always)]
unsafe fn load(p: *const bf16) -> __m512bh {
    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast()))
}

#[inline(always)]
unsafe fn load_masked(p: *const bf16, n: usize) -> __m512bh {
    let mask: __mmask32 = (1u32 << n) - 1;
    std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(mask, p.cast()))
}

/// `out[r * stride + c] = x[r] · w[c]` for `R` rows of `x` and `C` rows of `w`, each `k` long.
// Index loops over the const-sized register arrays are what unrolls into registers.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<const R: usize, const C: usize>(
    x: *const bf16,
    w: *const bf16,
    k: usize,
    out: *mut f32,
    stride: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut wv = [load_masked(w, 0); C];
    let full = k / LANES * LANES;
    let mut p = 0;
    while p < full {
        for c in 0..C {
            wv[c] = load(w.add(c * k + p));
        }
        for r in 0..R {
            let xv = load(x.add(r * k + p));
            for c in 0..C {
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
            }
        }
        p += LANES;
    }
    if p < k {
        let n = k - p;
        for c in 0..C {
            wv[c] = load_masked(w.add(c * k + p), n);
        }
        for r in 0..R {
            let xv = load_masked(x.add(r * k + p), n);
            for c in 0..C {
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            *out.add(r * stride + c) = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
}
