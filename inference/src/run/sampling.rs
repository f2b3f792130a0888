//! Choosing the next token from one row of logits on the host: greedy, or seeded sampling with
//! repeat penalty, temperature, top-k and top-p, in the order transformers applies them.

use std::cmp::Ordering;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::error::{Error, Result};

/// How [`Sampler`] picks tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// `0` is greedy decoding (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability is at least `p`.
    pub top_p: Option<f64>,
    pub seed: u64,
    /// `1` disables it. Applied in greedy decoding too, as transformers and llama.cpp do.
    pub repeat_penalty: f32,
    /// How many of the most recent history tokens the penalty looks at; `0` disables it.
    pub repeat_last_n: usize,
}

impl Default for SamplingParams {
    /// Greedy, no penalty.
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
        }
    }
}

impl SamplingParams {
    /// An error naming the first parameter out of its range (as its CLI flag), if any.
    pub fn validate(&self) -> Result<()> {
        let t = self.temperature;
        if !(t.is_finite() && t >= 0.0) {
            return Err(invalid(format!(
                "--temperature must be finite and >= 0, got {t}"
            )));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(invalid(format!("--top-p must be in (0, 1], got {p}")));
            }
        }
        if self.top_k == Some(0) {
            return Err(invalid("--top-k must be >= 1, got 0".into()));
        }
        let r = self.repeat_penalty;
        if !(r.is_finite() && r > 0.0) {
            return Err(invalid(format!(
                "--repeat-penalty must be finite and > 0, got {r}"
            )));
        }
        Ok(())
    }
}

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

/// Picks tokens from logits rows. Holds the RNG, so one sampler per generated sequence gives
/// the same tokens for the same seed.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha20Rng,
    // Reused between calls so that a 262k-entry vocabulary is not reallocated per token.
    scratch: Vec<f32>,
    candidates: Vec<Candidate>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            rng: ChaCha20Rng::seed_from_u64(params.seed),
            params,
            scratch: Vec::new(),
            candidates: Vec::new(),
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next token given the logits of the last position and the tokens so far (prompt and
    /// generated; only the last `repeat_last_n` matter). History ids outside the row are
    /// ignored. NaN logits never win; an empty row gives token 0.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut row = std::mem::take(&mut self.scratch);
        row.clear();
        row.extend_from_slice(logits);
        self.apply_repeat_penalty(&mut row, history);
        let token = if self.params.temperature == 0.0 {
            argmax(&row)
        } else {
            self.sample_row(&row)
        };
        self.scratch = row;
        token
    }

    fn apply_repeat_penalty(&self, row: &mut [f32], history: &[u32]) {
        let penalty = self.params.repeat_penalty;
        let n = self.params.repeat_last_n.min(history.len());
        if penalty == 1.0 || n == 0 {
            return;
        }
        let mut recent = history[history.len() - n..].to_vec();
        // Each distinct token once, however often it repeats (transformers and llama.cpp).
        recent.sort_unstable();
        recent.dedup();
        for id in recent {
            if let Some(x) = row.get_mut(id as usize) {
                *x = if *x > 0.0 { *x / penalty } else { *x * penalty };
            }
        }
    }

    fn sample_row(&mut self, row: &[f32]) -> u32 {
        let inv_t = 1.0 / self.params.temperature;
        let max = row
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            // All -inf (nothing to sample) or some +inf (all mass on it): the argmax is the
            // only meaningful answer, and it avoids inf - inf.
            return argmax(row);
        }
        let max = f64::from(max);
        // Unnormalised probabilities; NaN counts as -inf.
        let weight = |x: f32| {
            if x.is_nan() {
                0.0
            } else {
                ((f64::from(x) - max) * inv_t).exp()
            }
        };

        if self.params.top_k.is_none() && self.params.top_p.is_none() {
            // Plain temperature sampling needs no ordering: walk the row as it is.
            let total: f64 = row.iter().map(|&x| weight(x)).sum();
            let mut u = self.rng.random::<f64>() * total;
            let mut last = 0;
            for (i, &x) in row.iter().enumerate() {
                let w = weight(x);
                if w > 0.0 {
                    last = i;
                    if u < w {
                        return i as u32;
                    }
                    u -= w;
                }
            }
            // Rounding left a sliver of `u`: the last token with any mass takes it.
            return last as u32;
        }

        // Tokens without mass (-inf, NaN, or underflowed at this temperature) can never be
        // drawn, so they are not candidates; that also keeps masked rows cheap to order.
        let candidates = &mut self.candidates;
        candidates.clear();
        candidates.extend(row.iter().enumerate().filter_map(|(i, &x)| {
            let weight = weight(x);
            (weight > 0.0).then_some(Candidate {
                id: i as u32,
                logit: x,
                weight,
            })
        }));
        let k = self
            .params
            .top_k
            .unwrap_or(usize::MAX)
            .min(candidates.len());
        partition_top(candidates, k);
        let candidates = &mut candidates[..k];
        let total_k: f64 = candidates.iter().map(|c| c.weight).sum();
        // Only the top `keep` candidates need sorting. With top-p, grow `keep` until they hold
        // mass >= p, so a typical step sorts a few hundred entries, not the vocabulary.
        let mut keep = k;
        if let Some(p) = self.params.top_p {
            keep = k.min(256);
            while keep < k {
                partition_top(candidates, keep);
                let mass: f64 = candidates[..keep].iter().map(|c| c.weight).sum();
                if mass >= p * total_k {
                    break;
                }
                keep = (keep * 4).min(k);
            }
        }
        let top = &mut candidates[..keep];
        top.sort_unstable_by(descending);

        // Top-p over the renormalised top-k distribution, as transformers chains the warpers:
        // the smallest prefix whose mass reaches p, never empty.
        let mut end = top.len();
        if let Some(p) = self.params.top_p {
            let threshold = p * total_k;
            let mut cum = 0.0;
            for (i, c) in top.iter().enumerate() {
                cum += c.weight;
                if cum >= threshold {
                    end = i + 1;
                    break;
                }
            }
        }
        let kept = &top[..end];
        let total: f64 = kept.iter().map(|c| c.weight).sum();
        let mut u = self.rng.random::<f64>() * total;
        for c in kept {
            if u < c.weight {
                return c.id;
            }
            u -= c.weight;
        }
        // Rounding left a sliver of `u` (or nothing was kept, which the max guard prevents).
        kept.last().map_or_else(|| argmax(row), |c| c.id)
    }
}

/// A token that can be drawn, with its unnormalised probability.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: u32,
    logit: f32,
    weight: f64,
}

/// Higher logit first, then lower index: a total order, so ties break the same way every run.
fn descending(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Moves the `n` best candidates (by [`descending`]) to the front, unordered.
fn partition_top(candidates: &mut [Candidate], n: usize) {
    if n > 0 && n < candidates.len() {
        candidates.select_nth_unstable_by(n - 1, descending);
    }
}

/// Index of the largest value; ties go to the lowest index, as `torch.argmax` does. NaN never
/// wins; an empty or all-NaN row gives 0.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in row.iter().enumerate() {
        if x.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map_or(0, |(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f64, top_k: Option<usize>, top_p: Option<f64>, seed: u64) -> Sampler {
        Sampler::new(SamplingParams {
            temperature,
            top_k,
            top_p,
            seed,
            ..SamplingParams::default()
        })
        .unwrap()
    }

    /// A row with a spread of values and a unique maximum at index 37.
    fn row(n: usize) -> Vec<f32> {
        let mut r: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 / 25.0).collect();
        r[37] = 10.0;
        r
    }

    fn draws(s: &mut Sampler, logits: &[f32], n: usize) -> Vec<u32> {
        (0..n).map(|_| s.sample(logits, &[])).collect()
    }

    #[test]
    fn greedy_picks_argmax_with_ties_to_lowest_index() {
        let mut s = sampler(0.0, None, None, 0);
        assert_eq!(s.sample(&row(500), &[]), 37);
        assert_eq!(s.sample(&[1.0, 3.0, 2.0, 3.0], &[]), 1);
        assert_eq!(s.sample(&[f32::NAN, -1.0, f32::NAN, 0.5], &[]), 3);
        assert_eq!(s.sample(&[], &[]), 0);
    }

    #[test]
    fn same_seed_same_sequence_different_seed_different() {
        let logits: Vec<f32> = vec![0.0; 1000];
        for (top_k, top_p) in [(None, None), (Some(500), None), (None, Some(0.9))] {
            let a = draws(&mut sampler(1.0, top_k, top_p, 7), &logits, 50);
            let b = draws(&mut sampler(1.0, top_k, top_p, 7), &logits, 50);
            let c = draws(&mut sampler(1.0, top_k, top_p, 8), &logits, 50);
            assert_eq!(a, b, "top_k {top_k:?} top_p {top_p:?}");
            assert_ne!(a, c, "top_k {top_k:?} top_p {top_p:?}");
        }
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = row(2000);
        for seed in 0..20 {
            assert_eq!(sampler(1.5, Some(1), None, seed).sample(&logits, &[]), 37);
            assert_eq!(
                sampler(1.5, None, Some(1e-6), seed).sample(&logits, &[]),
                37
            );
        }
        // Ties: the lowest index is the one kept.
        let tied = [0.0, 2.0, 2.0, 1.0];
        for seed in 0..20 {
            assert_eq!(sampler(1.0, Some(1), None, seed).sample(&tied, &[]), 1);
        }
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        // Probabilities 0.5, 0.3, 0.15, 0.05.
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let seen = |s: &mut Sampler| {
            let mut seen = [false; 4];
            for t in draws(s, &logits, 2000) {
                seen[t as usize] = true;
            }
            seen
        };
        assert_eq!(
            seen(&mut sampler(1.0, Some(2), None, 1)),
            [true, true, false, false]
        );
        // 0.5 < 0.7 <= 0.8: the first two.
        assert_eq!(
            seen(&mut sampler(1.0, None, Some(0.7), 1)),
            [true, true, false, false]
        );
        assert_eq!(
            seen(&mut sampler(1.0, None, Some(0.9), 1)),
            [true, true, true, false]
        );
        assert_eq!(
            seen(&mut sampler(1.0, None, Some(1.0), 1)),
            [true, true, true, true]
        );
        // Top-p applies to the renormalised top-3 (0.526, 0.316, 0.158): 0.8 needs two.
        assert_eq!(
            seen(&mut sampler(1.0, Some(3), Some(0.8), 1)),
            [true, true, false, false]
        );
    }

    #[test]
    fn top_p_grows_past_the_first_partition() {
        // A flat 5000-token row: 0.5 of the mass needs 2500 tokens, beyond the first 256.
        let logits = vec![0.0f32; 5000];
        let mut s = sampler(1.0, None, Some(0.5), 3);
        let d = draws(&mut s, &logits, 300);
        assert!(d.iter().all(|&t| t < 2500), "kept the lowest 2500 indices");
        assert!(
            d.iter().any(|&t| t >= 1000),
            "and not only the first partition"
        );
    }

    #[test]
    fn distribution_matches_softmax() {
        let logits = [0.7f32.ln(), 0.3f32.ln()];
        for (top_k, top_p) in [(None, None), (Some(2), None), (None, Some(1.0))] {
            let mut s = sampler(1.0, top_k, top_p, 42);
            let zeros = draws(&mut s, &logits, 10_000)
                .iter()
                .filter(|&&t| t == 0)
                .count();
            // sd = sqrt(10000 * 0.21) ~ 46; 200 is over 4 sd.
            assert!((6800..=7200).contains(&zeros), "{zeros} of 10000");
        }
        // Temperature 2 flattens: p0 = sqrt(.7) / (sqrt(.7) + sqrt(.3)) ~ 0.604.
        let mut s = sampler(2.0, None, None, 42);
        let zeros = draws(&mut s, &logits, 10_000)
            .iter()
            .filter(|&&t| t == 0)
            .count();
        assert!((5840..=6240).contains(&zeros), "{zeros} of 10000");
    }

    #[test]
    fn repeat_penalty_demotes_repeated_tokens() {
        let params = |penalty: f32, last_n: usize| SamplingParams {
            repeat_penalty: penalty,
            repeat_last_n: last_n,
            ..SamplingParams::default()
        };
        // Positive logit divided: 3.0 / 2 = 1.5 < 2.0.
        let logits = [3.0, 2.0, -1.0];
        let mut s = Sampler::new(params(2.0, 64)).unwrap();
        assert_eq!(s.sample(&logits, &[]), 0);
        assert_eq!(s.sample(&logits, &[0, 0, 0]), 1);
        // Negative logit multiplied: -1 * 2 = -2 < -1.5.
        let negative = [-1.0, -1.5];
        assert_eq!(s.sample(&negative, &[0]), 1);
        // Only the last n count; out-of-vocabulary ids are ignored.
        let mut s = Sampler::new(params(2.0, 2)).unwrap();
        assert_eq!(s.sample(&logits, &[0, 1, 99]), 0);
        assert_eq!(s.sample(&logits, &[1, 0, 99]), 1);
        // The penalty applies once per distinct token, however often it repeats.
        let mut s = Sampler::new(params(1.4, 64)).unwrap();
        assert_eq!(s.sample(&logits, &[0, 0, 0, 0, 0, 0]), 0); // 3 / 1.4 = 2.14 > 2
                                                               // It also applies when sampling.
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_k: Some(1),
            ..params(2.0, 64)
        })
        .unwrap();
        assert_eq!(s.sample(&logits, &[0]), 1);
    }

    #[test]
    fn degenerate_rows_do_not_panic() {
        let mut s = sampler(1.0, None, Some(0.9), 0);
        let inf = f32::INFINITY;
        assert_eq!(s.sample(&[0.0, inf, 1.0], &[]), 1);
        assert_eq!(s.sample(&[-inf, -inf], &[]), 0);
        assert_eq!(s.sample(&[f32::NAN, -inf, 0.0], &[]), 2);
        assert_eq!(s.sample(&[], &[]), 0);
        let mut s = sampler(1.0, None, None, 0);
        assert_eq!(s.sample(&[-inf, 0.0, f32::NAN], &[]), 1);
        let mut s = sampler(1.0, Some(10), None, 0);
        assert_eq!(s.sample(&[-inf, 5.0], &[]), 1);
    }

    #[test]
    fn invalid_params_are_errors_naming_the_option() {
        let bad = [
            (
                SamplingParams {
                    temperature: -0.5,
                    ..Default::default()
                },
                "--temperature",
            ),
            (
                SamplingParams {
                    temperature: f64::NAN,
                    ..Default::default()
                },
                "--temperature",
            ),
            (
                SamplingParams {
                    top_p: Some(1.5),
                    ..Default::default()
                },
                "--top-p must be in (0, 1], got 1.5",
            ),
            (
                SamplingParams {
                    top_p: Some(0.0),
                    ..Default::default()
                },
                "--top-p",
            ),
            (
                SamplingParams {
                    top_k: Some(0),
                    ..Default::default()
                },
                "--top-k",
            ),
            (
                SamplingParams {
                    repeat_penalty: 0.0,
                    ..Default::default()
                },
                "--repeat-penalty",
            ),
        ];
        for (params, needle) in bad {
            match Sampler::new(params.clone()) {
                Err(Error::Invalid(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
                other => panic!("{params:?} gave {other:?}"),
            }
        }
        assert!(Sampler::new(SamplingParams {
            temperature: 0.7,
            top_k: Some(1),
            top_p: Some(1.0),
            repeat_penalty: 0.5,
            ..Default::default()
        })
        .is_ok());
    }
}
