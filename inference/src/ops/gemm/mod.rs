//! `y = x · wᵀ` on the CPU for `x: (m, k)` and `w: (n, k)`, both row-major, accumulating in
//! f32. Candle 0.11 widens bf16 operands to f32 on every CPU matmul, weights included, and
//! runs the decode-sized products on one core; this reads the weights once in their own
//! dtype, on every core.
//!
//! Work is split over the rows of `w` (output columns). Each task fills a column-major block
//! of f32 sums, which it writes into its columns of the output.

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;

use half::bf16;
use rayon::prelude::*;

/// Parallel tasks per thread: enough to balance uneven progress, few enough to amortise
/// scheduling, which costs more than a small task's work.
const TASKS_PER_THREAD: usize = 4;
/// The fewest rows of `w` a task is worth.
const MIN_TASK_ROWS: usize = 16;
/// Multiply-adds below which [`bf16_xw`] stays on the calling thread.
#[cfg(target_arch = "x86_64")]
const PARALLEL_XW_WORK: usize = 1 << 21;

/// One product, prepared: computes the output columns `cols` (rows of `w`) for every row of
/// `x` into `acc`, column by column: `acc[c * ld + i]` is row `i` of column `cols.start + c`.
trait Columns: Sync {
    /// The distance between consecutive columns in `acc`, at least `m`.
    fn ld(&self) -> usize;
    fn columns(&self, cols: Range<usize>, acc: &mut [f32]);
}

/// Writes a task's column-major sums (`cols` columns `ld` apart, `m` rows) into the
/// row-major output whose rows are `n` apart, from `out` on.
///
/// # Safety
/// `out` is valid for writes of `m` rows of `n` elements, of which these are the `cols`
/// from `out` on; `acc` holds at least `cols * ld` sums.
type Store<T> = unsafe fn(&[f32], usize, usize, usize, *mut T, usize);

/// `out[i * n + j] = Σ_k x[i * k + k'] · w[j * k + k']`.
pub fn bf16_xwt(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize) {
    check(x.len(), w.len(), out.len(), m, n, k);
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx512_bf16() {
        let product = x86::Product::<x86::Bf16>::new(x, w, m, k);
        return scatter(&product, x86::store_bf16, out, m, n);
    }
    scatter(
        &portable::Product::bf16(x, w, m, k),
        store::<bf16>,
        out,
        m,
        n,
    );
}

/// The f32 counterpart of [`bf16_xwt`].
pub fn f32_xwt(x: &[f32], w: &[f32], out: &mut [f32], m: usize, n: usize, k: usize) {
    check(x.len(), w.len(), out.len(), m, n, k);
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx512() {
        let product = x86::Product::<x86::F32>::new(x, w, m, k);
        return scatter(&product, x86::store_f32, out, m, n);
    }
    scatter(&portable::Product::f32(x, w, m, k), store::<f32>, out, m, n);
}

/// `out[i * n + j] = Σ_k x[i * k + k'] · w[k' * n + j]`: the product with `w` not transposed,
/// for a few rows of `x` (attention's probabilities times the values of a decode step). Each
/// row of `w` is read once per four rows of `x`.
pub fn bf16_xw(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize) {
    assert_eq!(x.len(), m * k, "x is not (m, k)");
    assert_eq!(w.len(), k * n, "w is not (k, n)");
    assert_eq!(out.len(), m * n, "out is not (m, n)");
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx512_bf16_vl() {
        let blocks: Vec<Range<usize>> = (0..n)
            .step_by(x86::XW_COLS)
            .map(|c| c..(c + x86::XW_COLS).min(n))
            .collect();
        let run = |cols: Range<usize>| {
            let mut block = vec![bf16::ZERO; m * cols.len()];
            x86::xw_bf16(x, w, m, n, cols.clone(), &mut block);
            (cols, block)
        };
        let done: Vec<(Range<usize>, Vec<bf16>)> = if m * n * k >= PARALLEL_XW_WORK {
            blocks.into_par_iter().map(run).collect()
        } else {
            blocks.into_iter().map(run).collect()
        };
        for (cols, block) in done {
            for (i, row) in block.chunks_exact(cols.len()).enumerate() {
                out[i * n + cols.start..i * n + cols.end].copy_from_slice(row);
            }
        }
        return;
    }
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

fn check(x: usize, w: usize, out: usize, m: usize, n: usize, k: usize) {
    assert_eq!(x, m * k, "x is not (m, k)");
    assert_eq!(w, n * k, "w is not (n, k)");
    assert_eq!(out, m * n, "out is not (m, n)");
}

/// An output element type, rounded from an f32 sum.
trait FromSum: Copy {
    fn from_sum(v: f32) -> Self;
}

impl FromSum for bf16 {
    fn from_sum(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl FromSum for f32 {
    fn from_sum(v: f32) -> Self {
        v
    }
}

/// The portable [`Store`]: blocks of columns by rows, so that both sides stay in cache.
unsafe fn store<T: FromSum>(acc: &[f32], ld: usize, cols: usize, m: usize, out: *mut T, n: usize) {
    const BLOCK: usize = 16;
    for c0 in (0..cols).step_by(BLOCK) {
        for i in 0..m {
            for c in c0..(c0 + BLOCK).min(cols) {
                *out.add(i * n + c) = T::from_sum(acc[c * ld + i]);
            }
        }
    }
}

/// The `(m, n)` output, shared by tasks that each write only their own columns.
struct Output<T>(*mut T);

// SAFETY: tasks write disjoint column ranges of the output (see `scatter`), and the output
// outlives every task.
unsafe impl<T: Send> Sync for Output<T> {}

/// Runs the product over column tasks in parallel; each task writes its sums into its own
/// columns of the `(m, n)` output.
fn scatter<T: Send + Copy>(
    product: &impl Columns,
    store: Store<T>,
    out: &mut [T],
    m: usize,
    n: usize,
) {
    let per_task = n
        .div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD)
        .next_multiple_of(MIN_TASK_ROWS);
    let tasks: Vec<Range<usize>> = (0..n)
        .step_by(per_task)
        .map(|s| s..(s + per_task).min(n))
        .collect();
    let ld = product.ld();
    let shared = Output(out.as_mut_ptr());
    tasks.into_par_iter().for_each(|cols| {
        let mut acc = vec![0f32; ld * cols.len()];
        product.columns(cols.clone(), &mut acc);
        let shared = &shared;
        // SAFETY: `out` is `(m, n)` (asserted by `check`), and this task's columns
        // `cols.start..cols.end` are inside it and nobody else's.
        unsafe { store(&acc, ld, cols.len(), m, shared.0.add(cols.start), n) };
    });
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

    #[cfg(target_arch = "x86_64")]
    fn columns(product: &impl Columns, n: usize) -> Vec<f32> {
        let mut acc = vec![0f32; product.ld() * n];
        product.columns(0..n, &mut acc);
        acc
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_portable_and_the_avx512_kernels_agree_on_both_paths() {
        // The dot products, the packed panels with a few rows after them, a padded panel.
        for m in [3, 18, 21] {
            let (n, k) = (37, 1152 + 9);
            let x = values(m * k, 3);
            let w = values(n * k, 4);
            let xb: Vec<bf16> = x.iter().copied().map(bf16::from_f32).collect();
            let wb: Vec<bf16> = w.iter().copied().map(bf16::from_f32).collect();
            let mut pairs = Vec::new();
            if x86::has_avx512() {
                let fast = x86::Product::<x86::F32>::new(&x, &w, m, k);
                pairs.push((
                    columns(&portable::Product::f32(&x, &w, m, k), n),
                    columns(&fast, n),
                    fast.ld(),
                ));
            }
            if x86::has_avx512_bf16() {
                let fast = x86::Product::<x86::Bf16>::new(&xb, &wb, m, k);
                pairs.push((
                    columns(&portable::Product::bf16(&xb, &wb, m, k), n),
                    columns(&fast, n),
                    fast.ld(),
                ));
            }
            for (plain, fast, ld) in pairs {
                for c in 0..n {
                    for i in 0..m {
                        let (p, q) = (plain[c * m + i], fast[c * ld + i]);
                        assert!(
                            (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                            "m={m}: {p} vs {q}"
                        );
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_and_the_portable_stores_write_the_same_output() {
        let (cols, m, ld, n) = (37, 21, 32, 50);
        let acc = values(cols * ld, 5);
        let mut plain = vec![bf16::ZERO; m * n];
        let mut fast = vec![bf16::ZERO; m * n];
        if x86::has_avx512_bf16() {
            // SAFETY: the outputs are (m, n) and the columns 3..3 + cols lie inside them.
            unsafe {
                store::<bf16>(&acc, ld, cols, m, plain.as_mut_ptr().add(3), n);
                x86::store_bf16(&acc, ld, cols, m, fast.as_mut_ptr().add(3), n);
            }
            assert_eq!(plain, fast);
            assert!(plain.iter().filter(|v| **v != bf16::ZERO).count() == cols * m);
        }
        let mut plain = vec![0f32; m * n];
        let mut fast = vec![0f32; m * n];
        if x86::has_avx512() {
            // SAFETY: as above.
            unsafe {
                store::<f32>(&acc, ld, cols, m, plain.as_mut_ptr().add(3), n);
                x86::store_f32(&acc, ld, cols, m, fast.as_mut_ptr().add(3), n);
            }
            assert_eq!(plain, fast);
        }
    }
}
