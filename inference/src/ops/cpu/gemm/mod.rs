//! `y = x · wᵀ` on the CPU for `x: (m, k)` and `w: (n, k)`, both row-major, accumulating in
//! f32. Candle 0.11 widens bf16 operands to f32 on every CPU matmul, weights included, and
//! runs the decode-sized products on one core; this reads the weights once in their own
//! dtype, on every core.
//!
//! Work is split over the rows of `w` (output columns). Each task fills a column-major block
//! of f32 sums, which it writes into its columns of the output. The kernels are chosen per
//! call by [`KernelPath`]: [`simd`]'s loops compiled for AVX-512, AVX2 or NEON, or
//! [`portable`]'s.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod block_dots;
mod converted;
#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
mod quantized;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;

use std::ops::Range;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use super::kernel_path::{self, KernelPath};
use converted::{Converted, F32Rows};
pub use quantized::{dequantize_rows, q_xwt, takes};

/// Parallel tasks per thread: enough to balance uneven progress, few enough to amortise
/// scheduling, which costs more than a small task's work.
const TASKS_PER_THREAD: usize = 4;
/// The fewest rows of `w` a task is worth.
const MIN_TASK_ROWS: usize = 16;
/// Multiply-adds below which [`bf16_xw`] stays on the calling thread.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
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

/// `out[i * n + j] = Σ_k x[i * k + k'] · w[j * k + k']`, on the active [`KernelPath`].
pub fn bf16_xwt(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize) {
    bf16_xwt_on(kernel_path::active(), x, w, out, m, n, k)
}

/// [`bf16_xwt`] on `path`, which the CPU must support.
pub fn bf16_xwt_on(
    path: KernelPath,
    x: &[bf16],
    w: &[bf16],
    out: &mut [bf16],
    m: usize,
    n: usize,
    k: usize,
) {
    check(x.len(), w.len(), out.len(), m, n, k);
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => {
            let product = simd::Product::<avx512::Bf16>::new(x, w, m, k);
            scatter(&product, avx512::store_bf16, out, m, n)
        }
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => widening_bf16_xwt::<avx2::Bf16, avx2::F32>(x, w, out, m, n, k),
        // `bfdot` does two products per f32 lane, as `vdpbf16ps` does: prompts too take the
        // bf16 product, as on AVX-512 (not measured on hardware: no such CPU here).
        #[cfg(target_arch = "aarch64")]
        KernelPath::NeonBf16 => scatter(
            &simd::Product::<neon::Bf16Dot>::new(x, w, m, k),
            store::<bf16>,
            out,
            m,
            n,
        ),
        #[cfg(target_arch = "aarch64")]
        KernelPath::Neon => widening_bf16_xwt::<neon::Bf16, neon::F32>(x, w, out, m, n, k),
        _ => scatter(
            &portable::Product::bf16(x, w, m, k),
            store::<bf16>,
            out,
            m,
            n,
        ),
    }
}

/// [`bf16_xwt`] on an instruction set without a bf16 product: split bf16 pairs for a decode
/// step's few rows, the f32 kernel over widened operands ([`converted::Converted`]) for a prompt.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn widening_bf16_xwt<B, F>(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize)
where
    B: simd::Lanes<Elem = bf16>,
    F: simd::Lanes<Elem = f32>,
{
    if m > simd::MR {
        let x = x.to_f32_vec();
        scatter(
            &Converted::new(simd::Product::<F>::new(&x, &[], m, k), w, k),
            store::<bf16>,
            out,
            m,
            n,
        )
    } else {
        scatter(
            &simd::Product::<B>::new(x, w, m, k),
            store::<bf16>,
            out,
            m,
            n,
        )
    }
}

/// The f32 counterpart of [`bf16_xwt`].
pub fn f32_xwt(x: &[f32], w: &[f32], out: &mut [f32], m: usize, n: usize, k: usize) {
    f32_xwt_on(kernel_path::active(), x, w, out, m, n, k)
}

/// [`f32_xwt`] on `path`, which the CPU must support.
pub fn f32_xwt_on(
    path: KernelPath,
    x: &[f32],
    w: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    check(x.len(), w.len(), out.len(), m, n, k);
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => {
            let product = simd::Product::<avx512::F32>::new(x, w, m, k);
            scatter(&product, avx512::store_f32, out, m, n)
        }
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => scatter(
            &simd::Product::<avx2::F32>::new(x, w, m, k),
            store::<f32>,
            out,
            m,
            n,
        ),
        #[cfg(target_arch = "aarch64")]
        KernelPath::Neon | KernelPath::NeonBf16 => scatter(
            &simd::Product::<neon::F32>::new(x, w, m, k),
            store::<f32>,
            out,
            m,
            n,
        ),
        _ => scatter(&portable::Product::f32(x, w, m, k), store::<f32>, out, m, n),
    }
}

/// The f16 counterpart of [`bf16_xwt`]. Every path widens the operands and sums in f32
/// ([`converted::Converted`]); no instruction set here has an f16 product that sums in f32.
pub fn f16_xwt(x: &[f16], w: &[f16], out: &mut [f16], m: usize, n: usize, k: usize) {
    f16_xwt_on(kernel_path::active(), x, w, out, m, n, k)
}

/// [`f16_xwt`] on `path`, which the CPU must support.
pub fn f16_xwt_on(
    path: KernelPath,
    x: &[f16],
    w: &[f16],
    out: &mut [f16],
    m: usize,
    n: usize,
    k: usize,
) {
    check(x.len(), w.len(), out.len(), m, n, k);
    let x = x.to_f32_vec();
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => scatter(
            &Converted::new(simd::Product::<avx512::F32>::new(&x, &[], m, k), w, k),
            store::<f16>,
            out,
            m,
            n,
        ),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => scatter(
            &Converted::new(simd::Product::<avx2::F32>::new(&x, &[], m, k), w, k),
            store::<f16>,
            out,
            m,
            n,
        ),
        #[cfg(target_arch = "aarch64")]
        KernelPath::Neon | KernelPath::NeonBf16 => scatter(
            &Converted::new(simd::Product::<neon::F32>::new(&x, &[], m, k), w, k),
            store::<f16>,
            out,
            m,
            n,
        ),
        _ => scatter(
            &portable::Product::widened(x, w, m, k),
            store::<f16>,
            out,
            m,
            n,
        ),
    }
}

/// `out[i * n + j] = Σ_k x[i * k + k'] · w[k' * n + j]`: the product with `w` not transposed,
/// for a few rows of `x` (attention's probabilities times the values of a decode step). Each
/// row of `w` is read once per four rows of `x`.
pub fn bf16_xw(x: &[bf16], w: &[bf16], out: &mut [bf16], m: usize, n: usize, k: usize) {
    bf16_xw_on(kernel_path::active(), x, w, out, m, n, k)
}

/// [`bf16_xw`] on `path`, which the CPU must support.
pub fn bf16_xw_on(
    path: KernelPath,
    x: &[bf16],
    w: &[bf16],
    out: &mut [bf16],
    m: usize,
    n: usize,
    k: usize,
) {
    assert_eq!(x.len(), m * k, "x is not (m, k)");
    assert_eq!(w.len(), k * n, "w is not (k, n)");
    assert_eq!(out.len(), m * n, "out is not (m, n)");
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => xw_blocks::<avx512::Bf16>(x, w, out, m, n, k),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => xw_blocks::<avx2::Bf16>(x, w, out, m, n, k),
        #[cfg(target_arch = "aarch64")]
        KernelPath::Neon | KernelPath::NeonBf16 => xw_blocks::<neon::Bf16>(x, w, out, m, n, k),
        _ => portable::xw_bf16(x, w, out, m, n, k),
    }
}

/// [`bf16_xw`] in blocks of columns, on every core when the product is big enough.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn xw_blocks<L: simd::Widen>(
    x: &[bf16],
    w: &[bf16],
    out: &mut [bf16],
    m: usize,
    n: usize,
    k: usize,
) {
    let width = simd::xw_cols::<L>();
    let blocks: Vec<Range<usize>> = (0..n)
        .step_by(width)
        .map(|c| c..(c + width).min(n))
        .collect();
    let run = |cols: Range<usize>| {
        let mut block = vec![bf16::ZERO; m * cols.len()];
        simd::xw_block::<L>(x, w, m, n, cols.clone(), &mut block);
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

impl FromSum for f16 {
    fn from_sum(v: f32) -> Self {
        f16::from_f32(v)
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

    /// `len` values in [-0.5, 0.5), a hash of their index and `seed`.
    pub(super) fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn to_bf16(v: &[f32]) -> Vec<bf16> {
        v.iter().copied().map(bf16::from_f32).collect()
    }

    fn widen(v: &[bf16]) -> Vec<f32> {
        v.iter().map(|v| v.to_f32()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn bf16_matches_an_f64_reference_on_every_path(m in 1usize..40, n in 1usize..150, k in 1usize..300, seed: u32) {
            let x = to_bf16(&values(m * k, seed));
            let w = to_bf16(&values(n * k, !seed));
            let want = reference(&widen(&x), &widen(&w), m, n, k);
            for path in KernelPath::supported() {
                let mut out = vec![bf16::ZERO; m * n];
                bf16_xwt_on(path, &x, &w, &mut out, m, n, k);
                for (got, want) in out.iter().zip(&want) {
                    // Exact products, f32 sums: only the final rounding to bf16 remains.
                    let tol = want.abs() / 128.0 + 1e-5 * k as f64;
                    prop_assert!((got.to_f64() - want).abs() <= tol, "{path}: {} vs {}", got, want);
                }
            }
        }

        #[test]
        fn f16_matches_an_f64_reference_on_every_path(m in 1usize..40, n in 1usize..150, k in 1usize..300, seed: u32) {
            let x: Vec<f16> = values(m * k, seed).into_iter().map(f16::from_f32).collect();
            let w: Vec<f16> = values(n * k, !seed).into_iter().map(f16::from_f32).collect();
            let want = reference(&x.to_f32_vec(), &w.to_f32_vec(), m, n, k);
            for path in KernelPath::supported() {
                let mut out = vec![f16::ZERO; m * n];
                f16_xwt_on(path, &x, &w, &mut out, m, n, k);
                for (got, want) in out.iter().zip(&want) {
                    let tol = want.abs() / 1024.0 + 1e-5 * k as f64;
                    prop_assert!((got.to_f64() - want).abs() <= tol, "{path}: {} vs {}", got, want);
                }
            }
        }

        #[test]
        fn f32_matches_an_f64_reference_on_every_path(m in 1usize..40, n in 1usize..150, k in 1usize..300, seed: u32) {
            let x = values(m * k, seed);
            let w = values(n * k, !seed);
            let want = reference(&x, &w, m, n, k);
            for path in KernelPath::supported() {
                let mut out = vec![0f32; m * n];
                f32_xwt_on(path, &x, &w, &mut out, m, n, k);
                for (got, want) in out.iter().zip(&want) {
                    prop_assert!((*got as f64 - want).abs() <= 1e-5 * k as f64, "{path}: {} vs {}", got, want);
                }
            }
        }

        #[test]
        fn xw_matches_an_f64_reference_on_every_path(m in 1usize..6, n in 1usize..140, k in 1usize..80, seed: u32) {
            let x = to_bf16(&values(m * k, seed));
            let w = to_bf16(&values(k * n, !seed));
            // `reference` takes w as (n, k): transpose the (k, n) right side.
            let (xf, wf) = (widen(&x), widen(&w));
            let wt: Vec<f32> = (0..n * k).map(|i| wf[(i % k) * n + i / k]).collect();
            let want = reference(&xf, &wt, m, n, k);
            for path in KernelPath::supported() {
                let mut out = vec![bf16::ZERO; m * n];
                bf16_xw_on(path, &x, &w, &mut out, m, n, k);
                for (got, want) in out.iter().zip(&want) {
                    let tol = want.abs() / 128.0 + 1e-5 * k as f64;
                    prop_assert!((got.to_f64() - want).abs() <= tol, "{path}: {} vs {}", got, want);
                }
            }
        }
    }

    #[test]
    fn every_path_agrees_with_the_portable_one_on_both_shapes() {
        // The dot products, the packed panels with a few rows after them, a padded panel, and
        // a k past one block of the packed path, odd so that a granule is cut short.
        for m in [1, 3, 18, 21, 37] {
            let (n, k) = (37, 1536 + 9);
            let x = values(m * k, 3);
            let w = values(n * k, 4);
            let (xb, wb) = (to_bf16(&x), to_bf16(&w));
            let mut plain = vec![0f32; m * n];
            let mut plain_bf16 = vec![bf16::ZERO; m * n];
            f32_xwt_on(KernelPath::Portable, &x, &w, &mut plain, m, n, k);
            bf16_xwt_on(KernelPath::Portable, &xb, &wb, &mut plain_bf16, m, n, k);
            for path in KernelPath::supported() {
                let mut fast = vec![0f32; m * n];
                f32_xwt_on(path, &x, &w, &mut fast, m, n, k);
                for (p, q) in plain.iter().zip(&fast) {
                    assert!(
                        (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                        "{path} m={m}: {p} vs {q}"
                    );
                }
                let mut fast = vec![bf16::ZERO; m * n];
                bf16_xwt_on(path, &xb, &wb, &mut fast, m, n, k);
                for (p, q) in plain_bf16.iter().zip(&fast) {
                    let (p, q) = (p.to_f32(), q.to_f32());
                    // One bf16 step apart at most: the f32 sums differ in their last bits.
                    assert!(
                        (p - q).abs() <= p.abs() / 128.0 + 1e-4,
                        "{path} m={m}: {p} vs {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn f16_sums_are_f32_on_every_path() {
        // Summed in f16, 4096 ones stop at 2048, where the spacing of f16 becomes 2.
        let k = 4096;
        let ones = vec![f16::ONE; k];
        for path in KernelPath::supported() {
            for m in [1, 2 * simd::MR + 1] {
                let x = vec![f16::ONE; m * k];
                let mut out = vec![f16::ZERO; m];
                f16_xwt_on(path, &x, &ones, &mut out, m, 1, k);
                assert!(out.iter().all(|v| v.to_f32() == 4096.0), "{path}: {out:?}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_and_the_portable_stores_write_the_same_output() {
        if !KernelPath::Avx512.is_supported() {
            return;
        }
        let (cols, m, ld, n) = (37, 21, 32, 50);
        let acc = values(cols * ld, 5);
        let mut plain = vec![bf16::ZERO; m * n];
        let mut fast = vec![bf16::ZERO; m * n];
        // SAFETY: the outputs are (m, n), the columns 3..3 + cols lie inside them, and the
        // CPU has AVX-512 (checked above).
        unsafe {
            store::<bf16>(&acc, ld, cols, m, plain.as_mut_ptr().add(3), n);
            avx512::store_bf16(&acc, ld, cols, m, fast.as_mut_ptr().add(3), n);
        }
        assert_eq!(plain, fast);
        assert!(plain.iter().filter(|v| **v != bf16::ZERO).count() == cols * m);
        let mut plain = vec![0f32; m * n];
        let mut fast = vec![0f32; m * n];
        // SAFETY: as above.
        unsafe {
            store::<f32>(&acc, ld, cols, m, plain.as_mut_ptr().add(3), n);
            avx512::store_f32(&acc, ld, cols, m, fast.as_mut_ptr().add(3), n);
        }
        assert_eq!(plain, fast);
    }
}
