//! Plain Rust kernels. Lane-wise accumulators let the compiler vectorise the dot products on
//! any target without reassociating float sums it was not allowed to.

use std::borrow::Cow;
use std::ops::Range;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::Columns;

const LANES: usize = 16;

fn dot(x: &[f32], w: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let xs = x.chunks_exact(LANES);
    let ws = w.chunks_exact(LANES);
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ws.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xc, wc) in xs.zip(ws) {
        for ((a, &xv), &wv) in acc.iter_mut().zip(xc).zip(wc) {
            *a += xv * wv;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A product over f32 rows; 16-bit operands are widened, `x` once and `w` a row at a time.
pub(super) struct Product<'a> {
    x: Cow<'a, [f32]>,
    w: Weights<'a>,
    m: usize,
    k: usize,
}

enum Weights<'a> {
    Bf16(&'a [bf16]),
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl<'a> Product<'a> {
    pub(super) fn bf16(x: &[bf16], w: &'a [bf16], m: usize, k: usize) -> Self {
        Self {
            x: Cow::Owned(x.to_f32_vec()),
            w: Weights::Bf16(w),
            m,
            k,
        }
    }

    /// f16 weights against `x` already widened.
    pub(super) fn widened(x: Vec<f32>, w: &'a [f16], m: usize, k: usize) -> Self {
        Self {
            x: Cow::Owned(x),
            w: Weights::F16(w),
            m,
            k,
        }
    }

    pub(super) fn f32(x: &'a [f32], w: &'a [f32], m: usize, k: usize) -> Self {
        Self {
            x: Cow::Borrowed(x),
            w: Weights::F32(w),
            m,
            k,
        }
    }
}

impl Columns for Product<'_> {
    fn ld(&self) -> usize {
        self.m
    }

    fn columns(&self, cols: Range<usize>, acc: &mut [f32]) {
        self.columns_of(&self.w, cols, acc)
    }
}

impl super::F32Rows for Product<'_> {
    const MIN_ROWS: usize = 1;

    fn columns_of(&self, w: &[f32], cols: Range<usize>, acc: &mut [f32]) {
        Product::columns_of(self, &Weights::F32(w), cols, acc)
    }
}

impl Product<'_> {
    fn columns_of(&self, w: &Weights<'_>, cols: Range<usize>, acc: &mut [f32]) {
        let k = self.k;
        if k == 0 {
            return;
        }
        let mut widened = vec![0f32; k];
        for (c, j) in cols.enumerate() {
            let row: &[f32] = match *w {
                Weights::F32(w) => &w[j * k..(j + 1) * k],
                Weights::Bf16(w) => {
                    w[j * k..(j + 1) * k].convert_to_f32_slice(&mut widened);
                    &widened
                }
                Weights::F16(w) => {
                    w[j * k..(j + 1) * k].convert_to_f32_slice(&mut widened);
                    &widened
                }
            };
            for (i, xr) in self.x.chunks_exact(k).take(self.m).enumerate() {
                acc[c * self.m + i] = dot(xr, row);
            }
        }
    }
}

/// `x · w` for `x: (m, k)` and a row-major `w: (k, n)`, row by row of `x`.
pub(super) fn xw_bf16(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize) {
    for (i, o) in out.chunks_exact_mut(n.max(1)).enumerate().take(m) {
        let mut sums = vec![0f32; n];
        for (t, wr) in w.chunks_exact(n.max(1)).enumerate().take(k) {
            let xv = x[i * k + t].to_f32();
            for (s, wv) in sums.iter_mut().zip(wr) {
                *s += xv * wv.to_f32();
            }
        }
        for (d, s) in o.iter_mut().zip(sums) {
            *d = bf16::from_f32(s);
        }
    }
}
