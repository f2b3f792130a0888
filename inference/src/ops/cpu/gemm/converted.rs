//! Products over weights stored narrower than f32, run as f32 ones: `x` is prepared once (and
//! packed, for a prompt), and each task converts its rows of `w` a slice at a time, small
//! enough to stay in L2 while every panel of `x` passes it.
//!
//! bf16 prompts take it on the instruction sets without a bf16 product: the f32 kernel's one
//! multiply-add per product beats splitting bf16 pairs in every tile (measured on AVX2: 55-65
//! GFLOP/s split, 86-93 widened, on the 1B's MLP shapes). f16 takes it on every path, so that
//! its sums are f32 even where the CPU has f16 arithmetic (Candle's f16 matmul sums in f16
//! there). Quantized prompts take it with their blocks dequantized.

use std::ops::Range;

use half::slice::HalfFloatSliceExt;

use super::Columns;

/// Bytes of f32 weights a task converts at a time.
const SLICE_BYTES: usize = 1 << 20;

/// A product with `x` prepared once, against rows of f32 weights that each call brings.
pub(super) trait F32Rows: Columns {
    /// The fewest rows of `w` worth a call: the product's register tile.
    const MIN_ROWS: usize;
    /// [`Columns::columns`] against `w`, whose rows are the columns `cols` of the output.
    fn columns_of(&self, w: &[f32], cols: Range<usize>, acc: &mut [f32]);
}

/// A weight whose rows convert to f32.
pub(super) trait Rows: Sync {
    /// Writes `rows` of the weight, `k` elements each, into `dst`.
    fn to_f32(&self, rows: Range<usize>, k: usize, dst: &mut [f32]);
}

impl<H: Sync> Rows for &[H]
where
    [H]: HalfFloatSliceExt,
{
    fn to_f32(&self, rows: Range<usize>, k: usize, dst: &mut [f32]) {
        self[rows.start * k..rows.end * k].convert_to_f32_slice(dst)
    }
}

pub(super) struct Converted<P, R> {
    product: P,
    w: R,
    k: usize,
}

impl<P: F32Rows, R: Rows> Converted<P, R> {
    /// `product` holds `x`, and `w` has rows of `k`.
    pub(super) fn new(product: P, w: R, k: usize) -> Self {
        Self { product, w, k }
    }
}

impl<P: F32Rows, R: Rows> Columns for Converted<P, R> {
    fn ld(&self) -> usize {
        self.product.ld()
    }

    fn columns(&self, cols: Range<usize>, acc: &mut [f32]) {
        let k = self.k.max(1);
        let ld = self.ld();
        let rows = (SLICE_BYTES / (4 * k)).max(P::MIN_ROWS);
        let mut wide = vec![0f32; rows.min(cols.len()) * k];
        for start in cols.clone().step_by(rows) {
            let end = (start + rows).min(cols.end);
            let dst = &mut wide[..(end - start) * self.k];
            self.w.to_f32(start..end, self.k, dst);
            let at = (start - cols.start) * ld;
            self.product.columns_of(dst, 0..end - start, &mut acc[at..]);
        }
    }
}
