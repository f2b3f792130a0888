//! The result of a run: one row per (case, backend), mergeable across runners.

use serde::{Deserialize, Serialize};

use op_matrix_core::outcome::Outcome;

/// A backend as one runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `cpu`, `cuda:0`, `metal:0`.
    pub name: String,
    /// `present`, `not compiled` or `absent: <why>`.
    pub status: String,
    /// Where it ran: host, card, driver, as far as known.
    pub device: String,
}

/// One executed (or skipped) case on one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The op's name, e.g. `rope`.
    pub op: String,
    /// The full signature, e.g. `rope bf16[1, 4, 27, 32], bf16[27, 16], bf16[27, 16]`.
    pub signature: String,
    /// The model dtype of the traced run the case came from.
    pub dtype: String,
    pub backend: String,
    /// Phases of the trace the case occurs in: load, prefill, decode, score; `e2e` for the
    /// end-to-end model comparison.
    pub phase: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    pub candle_version: String,
    /// Free-form facts about the runners (card, driver, build), from `--note`.
    #[serde(default)]
    pub notes: Vec<String>,
    pub backends: Vec<BackendInfo>,
    pub cases: Vec<CaseResult>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| c.outcome.is_failure())
    }

    pub fn executed(&self) -> usize {
        self.cases.iter().filter(|c| c.outcome.executed()).count()
    }

    /// Whether the run must fail: any failure, or nothing executed at all.
    pub fn failed(&self) -> bool {
        self.failures().next().is_some() || self.executed() == 0
    }

    /// Combines reports from several runners into one matrix. Backends seen by several
    /// runners keep the first runner's row for each case they share.
    pub fn merge(reports: impl IntoIterator<Item = Report>) -> Report {
        let mut out = Report::default();
        for r in reports {
            if out.candle_version.is_empty() {
                out.candle_version = r.candle_version.clone();
            }
            out.notes.extend(r.notes);
            for b in r.backends {
                // A runner that has the device beats one that lacks it; otherwise first wins.
                match out.backends.iter_mut().find(|x| x.name == b.name) {
                    None => out.backends.push(b),
                    Some(x) if x.status != "present" && b.status == "present" => *x = b,
                    Some(_) => {}
                }
            }
            for c in r.cases {
                let existing = out.cases.iter_mut().find(|x| {
                    x.backend == c.backend
                        && x.signature == c.signature
                        && x.dtype == c.dtype
                        && x.phase == c.phase
                });
                match existing {
                    Some(x) if !x.outcome.executed() => *x = c,
                    Some(_) => {}
                    None => out.cases.push(c),
                }
            }
        }
        out
    }
}
