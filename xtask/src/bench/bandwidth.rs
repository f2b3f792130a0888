//! Memory bandwidth with the bench's thread count: a read-only sum over a large buffer (what a
//! decode step does to the weights) and a memcpy, best of several runs.

use std::hint::black_box;
use std::time::Instant;

use super::report::Bandwidth;

/// Measures over a buffer of `bytes` (rounded down to whole u64 lanes per thread).
pub fn measure(bytes: usize, threads: usize, repeats: usize) -> Bandwidth {
    let threads = threads.max(1);
    let words = (bytes / 8 / threads / 8).max(1) * threads * 8;
    // Distinct values, so no page is a shared zero page and nothing folds away.
    let src: Vec<u64> = (0..words as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mut dst = vec![1u64; words];
    let chunk = words / threads;
    let mut best_read = f64::INFINITY;
    let mut best_copy = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let total = std::thread::scope(|s| {
            let handles: Vec<_> = src.chunks(chunk).map(|c| s.spawn(move || sum(c))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a summing thread"))
                .fold(0u64, u64::wrapping_add)
        });
        best_read = best_read.min(t.elapsed().as_secs_f64());
        black_box(total);

        let t = Instant::now();
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(c));
            }
        });
        best_copy = best_copy.min(t.elapsed().as_secs_f64());
        black_box(&mut dst);
    }
    let n = (words * 8) as f64;
    Bandwidth {
        read_gb_s: n / best_read / 1e9,
        copy_gb_s: n / best_copy / 1e9,
        buffer_bytes: (words * 8) as u64,
        threads,
        repeats: repeats.max(1),
        samples_read_gb_s: Vec::new(),
    }
}

/// Eight independent lanes, so the loop vectorizes and is bound by loads, not by one add chain.
fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut it = words.chunks_exact(8);
    for c in &mut it {
        for (a, w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*w);
        }
    }
    let rest = it.remainder().iter().fold(0u64, |a, w| a.wrapping_add(*w));
    acc.iter().fold(rest, |a, w| a.wrapping_add(*w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_covers_every_word() {
        let v: Vec<u64> = (1..=1001).collect();
        assert_eq!(sum(&v), 1001 * 1002 / 2);
    }

    #[test]
    fn a_small_measurement_is_positive_and_finite() {
        let b = measure(8 << 20, 2, 2);
        assert_eq!(b.buffer_bytes, 8 << 20);
        assert!(b.read_gb_s.is_finite() && b.read_gb_s > 0.0);
        assert!(b.copy_gb_s.is_finite() && b.copy_gb_s > 0.0);
    }
}
