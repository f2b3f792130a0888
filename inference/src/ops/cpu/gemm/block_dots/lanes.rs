//! A prompt's product over Q4_0 or Q8_0 blocks on AVX-512 VNNI, one row of `w` in each 32-bit
//! lane. Sixteen rows of `w` are gathered, a slice of `k` at a time, so that lane `n` of
//! register `g` holds weights `4g..4g + 4` of row `n`'s block, unsigned; one `vpdpbusd` then
//! multiplies them by four activations of one row of `x`, broadcast, and adds 64 products
//! into 16 sums with no shuffle and no reduction. The blocks' scales apply once a block for
//! the 16 rows. The pair tiles, which sum eight lanes of one row of `w` and reduce them,
//! spend three float instructions on every two `vpdpbusd`; here it is three on eight.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Format, BLOCK, Q8};

/// Rows of `w` a tile takes, one a lane.
const LANES: usize = 16;
/// Registers of weights a block fills: four weights a lane each.
const GROUPS: usize = BLOCK / 4;
/// Rows of `x` a tile takes: 8 registers of weights, 8 of integer sums and 8 of float sums
/// fit AVX-512's 32.
const ROWS: usize = 8;
/// Bytes of activations that a pass over one slice of `k` reads for every row of `x`: the
/// slice stays in L2 while the tiles of a task pass it.
const X_SLICE_BYTES: usize = 384 << 10;

/// One block of 16 rows of `w`, as a tile reads it.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Packed {
    weights: [[u8; 4 * LANES]; GROUPS],
    scales: [f32; LANES],
}

/// `acc[c * ld + i] = Σ x[i] · w[cols.start + c]` for every row `i` of `x` and the rows `cols`
/// of `w`, `format` blocks `row_bytes` a row.
///
/// # Safety
/// The CPU has AVX-512 F and VNNI; `format` is Q4_0 or Q8_0; `w` holds `cols.end` rows of
/// `row_bytes`, each `x.blocks` blocks; `acc` holds `cols.len()` columns of `ld >= x`'s rows,
/// zeroed.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn columns(
    format: Format,
    w: &[u8],
    row_bytes: usize,
    x: &Q8,
    cols: Range<usize>,
    acc: &mut [f32],
    ld: usize,
) {
    let (m, blocks) = (x.rows(), x.blocks);
    let slice = (X_SLICE_BYTES / (m.max(1) * BLOCK)).clamp(1, blocks.max(1));
    let zero = Packed {
        weights: [[0; 4 * LANES]; GROUPS],
        scales: [0.0; LANES],
    };
    let mut packed = vec![zero; slice];
    for first in (0..blocks).step_by(slice) {
        let span = first..(first + slice).min(blocks);
        for start in cols.clone().step_by(LANES) {
            let rows = start..(start + LANES).min(cols.end);
            let packed = &mut packed[..span.len()];
            gather(format, w, row_bytes, &rows, &span, packed);
            let at = (start - cols.start) * ld;
            let mut i = 0;
            while i + ROWS <= m {
                tile::<ROWS>(format, x, i, &span, packed, &mut acc[at..], ld, rows.len());
                i += ROWS;
            }
            for i in i..m {
                tile::<1>(format, x, i, &span, packed, &mut acc[at..], ld, rows.len());
            }
        }
    }
}

/// Blocks `span` of the rows `rows` of `w` (at most 16) into `out`, a row a lane; the lanes
/// past the rows hold zeros, weights and scales, so they add nothing.
#[inline(always)]
unsafe fn gather(
    format: Format,
    w: &[u8],
    row_bytes: usize,
    rows: &Range<usize>,
    span: &Range<usize>,
    out: &mut [Packed],
) {
    let live = u16::MAX >> (LANES - rows.len());
    let step = _mm512_set1_epi32(row_bytes as i32);
    let index = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        step,
    );
    let block_bytes = format.block_bytes();
    let nibble = _mm512_set1_epi8(0x0f);
    let unsigned = _mm512_set1_epi8(-128);
    for (packed, b) in out.iter_mut().zip(span.clone()) {
        let base = w.as_ptr().add(rows.start * row_bytes + b * block_bytes);
        // Four bytes at `at` of each row's block.
        let words = |at: usize| {
            _mm512_mask_i32gather_epi32::<1>(
                _mm512_setzero_si512(),
                live,
                index,
                base.add(at).cast(),
            )
        };
        let scales = _mm512_cvtepi32_epi16(words(0));
        packed.scales = std::mem::transmute::<__m512, [f32; LANES]>(_mm512_cvtph_ps(scales));
        let weights = &mut packed.weights;
        match format {
            Format::Q4_0 => {
                for g in 0..GROUPS / 2 {
                    let bytes = words(2 + 4 * g);
                    let high = _mm512_srli_epi16(bytes, 4);
                    store(&mut weights[g], _mm512_and_si512(bytes, nibble));
                    store(&mut weights[g + GROUPS / 2], _mm512_and_si512(high, nibble));
                }
            }
            Format::Q8_0 => {
                for (g, weights) in weights.iter_mut().enumerate() {
                    let bytes = words(2 + 4 * g);
                    // Zeros in the empty lanes become 128s: their scales are zero.
                    store(weights, _mm512_xor_si512(bytes, unsigned));
                }
            }
            Format::Q5_0 => unreachable!("Q5_0 has no lane tiles"),
        }
    }
}

#[inline(always)]
unsafe fn store(to: &mut [u8; 4 * LANES], v: __m512i) {
    _mm512_storeu_si512(to.as_mut_ptr().cast(), v)
}

/// Rows `i..i + R` of `x` against the 16 rows of `w` in `packed`, over the blocks `span`,
/// added to the first `live` columns of `acc` (rows of `x` down a column, columns `ld` apart).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    format: Format,
    x: &Q8,
    i: usize,
    span: &Range<usize>,
    packed: &[Packed],
    acc: &mut [f32],
    ld: usize,
    live: usize,
) {
    let blocks = x.blocks;
    let offset = -format.pair_offset();
    let q = x.q.as_ptr().add(i * blocks * BLOCK);
    let d = x.d.as_ptr().add(i * blocks);
    let sums = x.sums.as_ptr().add(i * blocks);
    let mut out = [_mm512_setzero_ps(); R];
    for (p, b) in packed.iter().zip(span.clone()) {
        // Loops, not `array::from_fn`: a closure does not take this function's target
        // features, and uninlined, each of its intrinsics is a call.
        let mut weights = [_mm512_setzero_si512(); GROUPS];
        for (weights, group) in weights.iter_mut().zip(&p.weights) {
            *weights = _mm512_load_si512(group.as_ptr().cast());
        }
        let scales = _mm512_load_ps(p.scales.as_ptr());
        let mut ints = [_mm512_setzero_si512(); R];
        for (r, int) in ints.iter_mut().enumerate() {
            *int = _mm512_set1_epi32(offset * *sums.add(r * blocks + b));
        }
        for (g, &weights) in weights.iter().enumerate() {
            for (r, int) in ints.iter_mut().enumerate() {
                let four = q.add((r * blocks + b) * BLOCK + 4 * g).cast::<i32>();
                *int = _mm512_dpbusd_epi32(*int, weights, _mm512_set1_epi32(four.read_unaligned()));
            }
        }
        for (r, (out, &int)) in out.iter_mut().zip(&ints).enumerate() {
            let scale = _mm512_mul_ps(scales, _mm512_set1_ps(*d.add(r * blocks + b)));
            *out = _mm512_fmadd_ps(_mm512_cvtepi32_ps(int), scale, *out);
        }
    }
    for (r, &sums) in out.iter().enumerate() {
        let sums = std::mem::transmute::<__m512, [f32; LANES]>(sums);
        for (n, &s) in sums.iter().take(live).enumerate() {
            *acc.get_unchecked_mut(n * ld + i + r) += s;
        }
    }
}
