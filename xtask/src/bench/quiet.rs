//! Measuring on a shared machine: wait until other processes leave the cores alone before a
//! measurement, and measure again when they did not during it.
//!
//! Engines with spinning thread pools (torch's OpenMP, ggml's) lose up to 10x when another
//! process takes one of their cores, so a number taken under load says more about the load
//! than about the engine. Each measurement reports the cores other processes kept busy meanwhile
//! (`others_cores`); above `max_other_load` it is repeated, up to `retries` times, after waiting
//! for a quiet machine. The waiting has one budget for the whole run; once it is spent, the bench
//! measures at once and the table's "other load" column tells which rows were disturbed.

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::process::machine_busy_s;

pub struct Quiet {
    max_other_load: f64,
    retries: usize,
    budget: Cell<Duration>,
}

impl Quiet {
    pub fn new(max_other_load: f64, retries: usize, patience: Duration) -> Self {
        Quiet {
            max_other_load,
            retries,
            budget: Cell::new(patience),
        }
    }

    /// Cores busy over a one-second window (nothing of ours runs meanwhile).
    fn load_now() -> Option<f64> {
        let window = Duration::from_secs(1);
        let a = machine_busy_s()?;
        std::thread::sleep(window);
        let b = machine_busy_s()?;
        Some((b - a) / window.as_secs_f64())
    }

    /// Returns once other processes use at most `max_other_load` cores, or the budget is spent.
    pub fn wait(&self) {
        let started = Instant::now();
        let mut said = None::<Instant>;
        while !self.budget.get().is_zero() {
            let Some(load) = Self::load_now() else { return };
            let spent = started.elapsed();
            self.budget
                .set(self.budget.get().saturating_sub(Duration::from_secs(1)));
            if load <= self.max_other_load {
                if said.is_some() {
                    tracing::info!("the machine is quiet after {:.0} s", spent.as_secs_f64());
                }
                return;
            }
            if said.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                tracing::info!(
                    "waiting for a quiet machine: other processes use {load:.2} cores ({:.0} s of waiting left for this run)",
                    self.budget.get().as_secs_f64()
                );
                said = Some(Instant::now());
            }
        }
        if said.is_some() {
            tracing::warn!("the waiting budget is spent (--patience): measuring under load");
        }
    }

    /// Runs `f` on a quiet machine, again while other processes disturbed it (`load`), and
    /// keeps the least disturbed result.
    pub fn measure<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T>,
        load: impl Fn(&T) -> Option<f64>,
    ) -> Result<T> {
        let mut best: Option<(f64, T)> = None;
        for attempt in 0..=self.retries {
            self.wait();
            let r = f()?;
            let l = load(&r).unwrap_or(0.0);
            if l <= self.max_other_load {
                return Ok(r);
            }
            if attempt < self.retries {
                tracing::info!(
                    "{what}: other processes kept {l:.2} cores busy meanwhile; measuring again"
                );
            }
            if best.as_ref().is_none_or(|(b, _)| l < *b) {
                best = Some((l, r));
            }
        }
        Ok(best.expect("at least one attempt").1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disturbed_measurement_is_repeated_and_the_least_disturbed_kept() {
        // No waiting budget: only the retries matter.
        let q = Quiet::new(0.3, 2, Duration::ZERO);
        let loads = [1.5, 0.9, 1.2];
        let mut i = 0;
        let got = q
            .measure(
                "x",
                || {
                    i += 1;
                    Ok(loads[i - 1])
                },
                |l| Some(*l),
            )
            .unwrap();
        assert_eq!((i, got), (3, 0.9));
        let mut n = 0;
        let got = q
            .measure(
                "y",
                || {
                    n += 1;
                    Ok(0.1)
                },
                |l| Some(*l),
            )
            .unwrap();
        assert_eq!((n, got), (1, 0.1));
    }
}
