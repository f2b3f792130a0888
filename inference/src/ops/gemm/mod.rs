//! `y = x · wᵀ` on the CPU for `x: (m, k)` and `w: (n, k)`, both row-major, accumulating in
//! f32. Candle 0.11 widens bf16 operands to f32 on every CPU matmul, weights included, and
//! runs the decode-sized products on one core; this reads the weights once in their own
//! dtype, on every core.
//!
//! Work is split over the rows of `w` (output columns). Rows of `x` are taken in blocks small
//! enough to stay in cache while a tile of `w` streams past them.

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use half::bf16;
use rayon::prelude::*;

/// Parallel tasks per thread: enough to balance uneven progress, few enough to amortise
/// scheduling, which costs more than a small task's work.
const TASKS_PER_THREAD: usize = 4;
/// The fewest rows of `w` a task is worth.
const MIN_TASK_ROWS: usize = 16;

/// `out[i * n + j] = Σ_k x[i * k + k'] · w[j * k + k']`.
pub fn bf16_xwt(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize) {
    check(x.len(), w.len(), out.len(), m, n, k);
    let kernel = pick_bf16();
    run(out, m, n, |rows, acc| kernel(x, w, k, m, rows, acc));
}

/// The f32 counterpart of [`bf16_xwt`].
pub fn f32_xwt(x: &[f32], w: &[f32], out: &mut [f32], m: usize, n: usize, k: usize) {
    check(x.len(), w.len(), out.len(), m, n, k);
    let kernel = pick_f32();
    run_f32(out, m, n, |rows, acc| kernel(x, w, k, m, rows, acc));
}

fn check(x: usize, w: usize, out: usize, m: usize, n: usize, k: usize) {
    assert_eq!(x, m * k, "x is not (m, k)");
    assert_eq!(w, n * k, "w is not (n, k)");
    assert_eq!(out, m * n, "out is not (m, n)");
}

/// Computes the columns `rows` (rows of `w`) for every row of `x` into `acc`, laid out
/// `(m, rows.len())`.
type Kernel<T> = fn(&[T], &[T], usize, usize, std::ops::Range<usize>, &mut [f32]);

fn pick_f32() -> Kernel<f32> {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx512() {
        return x86::f32_rows;
    }
    portable::f32_rows
}

fn pick_bf16() -> Kernel<bf16> {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx512_bf16() {
        return x86::bf16_rows;
    }
    portable::bf16_rows
}

fn run(
    out: &mut [bf16],
    m: usize,
    n: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    scatter(n, m, out, f, bf16::from_f32);
}

fn run_f32(
    out: &mut [f32],
    m: usize,
    n: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    scatter(n, m, out, f, |v| v);
}

/// Runs `f` over column tasks in parallel and writes each task's `(m, cols)` block into the
/// `(m, n)` output, converted by `to`.
fn scatter<T: Send + Copy>(
    n: usize,
    m: usize,
    out: &mut [T],
    f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
    to: impl Fn(f32) -> T + Sync,
) {
    let per_task = n
        .div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD)
        .next_multiple_of(MIN_TASK_ROWS);
    let tasks: Vec<std::ops::Range<usize>> = (0..n)
        .step_by(per_task)
        .map(|s| s..(s + per_task).min(n))
        .collect();
    let blocks: Vec<(std::ops::Range<usize>, Vec<f32>)> = tasks
        .into_par_iter()
        .map(|cols| {
            let mut acc = vec![0f32; m * cols.len()];
            f(cols.clone(), &mut acc);
            (cols, acc)
        })
        .collect();
    for (cols, acc) in blocks {
        let width = cols.len();
        for (i, row) in acc.chunks_exact(width).enumerate() {
            for (o, &v) in out[i * n + cols.start..i * n + cols.end]
                .iter_mut()
                .zip(row)
            {
                *o = to(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn bf16_matches_an_f64_reference(m in 1usize..20, n in 1usize..150, k in 1usize..300, seed: u32) {
            let x: Vec<bf16> = values(m * k, seed).into_iter().map(bf16::from_f32).collect();
            let w: Vec<bf16> = values(n * k, !seed).into_iter().map(bf16::from_f32).collect();
            let mut out = vec![bf16::ZERO; m * n];
            bf16_xwt(&x, &w, &mut out, m, n, k);
            let xf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
            let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
            for (got, want) in out.iter().zip(reference(&xf, &wf, m, n, k)) {
                // Exact products, f32 sums: only the final rounding to bf16 remains.
                let tol = want.abs() / 128.0 + 1e-5 * k as f64;
                prop_assert!((got.to_f64() - want).abs() <= tol, "{} vs {}", got, want);
            }
        }

        #[test]
        fn f32_matches_an_f64_reference(m in 1usize..20, n in 1usize..150, k in 1usize..300, seed: u32) {
            let x = values(m * k, seed);
            let w = values(n * k, !seed);
            let mut out = vec![0f32; m * n];
            f32_xwt(&x, &w, &mut out, m, n, k);
            for (got, want) in out.iter().zip(reference(&x, &w, m, n, k)) {
                prop_assert!((*got as f64 - want).abs() <= 1e-5 * k as f64, "{} vs {}", got, want);
            }
        }
    }

    #[test]
    fn the_portable_and_the_dispatched_f32_kernels_agree() {
        let (m, n, k) = (6, 37, 1152 + 9);
        let x = values(m * k, 3);
        let w = values(n * k, 4);
        let mut a = vec![0f32; m * n];
        let mut b = vec![0f32; m * n];
        portable::f32_rows(&x, &w, k, m, 0..n, &mut a);
        pick_f32()(&x, &w, k, m, 0..n, &mut b);
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-4 * p.abs().max(1.0), "{p} vs {q}");
        }
    }

    #[test]
    fn the_portable_and_the_dispatched_bf16_kernels_agree() {
        let (m, n, k) = (5, 70, 1152 + 17);
        let x: Vec<bf16> = values(m * k, 1).into_iter().map(bf16::from_f32).collect();
        let w: Vec<bf16> = values(n * k, 2).into_iter().map(bf16::from_f32).collect();
        let mut a = vec![0f32; m * n];
        let mut b = vec![0f32; m * n];
        portable::bf16_rows(&x, &w, k, m, 0..n, &mut a);
        pick_bf16()(&x, &w, k, m, 0..n, &mut b);
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-4 * p.abs().max(1.0), "{p} vs {q}");
        }
    }
}
