//! Plain Rust kernels. Lane-wise accumulators let the compiler vectorise the dot products on
//! any target without reassociating float sums it was not allowed to.

use std::ops::Range;

use half::bf16;

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

/// bf16 `x · w[rows]ᵀ` into `acc` `(m, rows.len())`, widening each operand to f32 once.
pub fn bf16_rows(x: &[bf16], w: &[bf16], k: usize, m: usize, rows: Range<usize>, acc: &mut [f32]) {
    let xf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
    let width = rows.len();
    let mut wf = vec![0f32; k];
    for (c, j) in rows.enumerate() {
        for (d, s) in wf.iter_mut().zip(&w[j * k..(j + 1) * k]) {
            *d = s.to_f32();
        }
        for i in 0..m {
            acc[i * width + c] = dot(&xf[i * k..(i + 1) * k], &wf);
        }
    }
}

/// f32 `x · w[rows]ᵀ` into `acc` `(m, rows.len())`.
pub fn f32_rows(x: &[f32], w: &[f32], k: usize, m: usize, rows: Range<usize>, acc: &mut [f32]) {
    let width = rows.len();
    for (c, j) in rows.enumerate() {
        let wr = &w[j * k..(j + 1) * k];
        for i in 0..m {
            acc[i * width + c] = dot(&x[i * k..(i + 1) * k], wr);
        }
    }
}
