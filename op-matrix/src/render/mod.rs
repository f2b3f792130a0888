//! Renderers of a [`Report`]: a Markdown matrix in the manner of llama.cpp's `docs/ops.md`,
//! JUnit XML for CI dashboards and a plain-text table for the terminal.
//!
//! The Markdown and terminal tables share one cell rule (see [`Tally`]): a cell is skipped
//! when nothing executed, failing when any executed case failed, and passing otherwise,
//! with expected failures counted beside the passes.

use std::collections::BTreeSet;

use crate::report::{CaseResult, Report};
use inference::ops::OpKind;
use op_matrix_core::outcome::Outcome;

pub mod junit;
pub mod markdown;
pub mod table;

/// Counts of outcomes over a group of cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub executed: usize,
    pub passed: usize,
    /// Outcomes that fail the run, unexpected passes included.
    pub failed: usize,
    pub xfail: usize,
    pub skipped: usize,
}

impl Tally {
    pub fn of<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Self {
        let mut t = Tally::default();
        for c in cases {
            let o = &c.outcome;
            if !o.executed() {
                t.skipped += 1;
                continue;
            }
            t.executed += 1;
            if o.is_failure() {
                t.failed += 1;
            } else if matches!(o, Outcome::ExpectedFailure { .. }) {
                t.xfail += 1;
            } else {
                t.passed += 1;
            }
        }
        t
    }

    /// The cell text after the mark: `12`, `10 (2 xfail)`, `3/12`, or `skipped`.
    fn cell(&self, ok: &str, fail: &str, skipped: &str) -> String {
        if self.executed == 0 {
            return skipped.to_string();
        }
        let mut s = if self.failed > 0 {
            format!("{fail} {}/{}", self.failed, self.executed)
        } else {
            format!("{ok} {}", self.passed)
        };
        if self.xfail > 0 {
            s.push_str(&format!(" ({} xfail)", self.xfail));
        }
        // A partly skipped group must not read as fully covered.
        if self.skipped > 0 {
            s.push_str(&format!(" ({} skipped)", self.skipped));
        }
        s
    }

    /// The one-line total shared by the terminal table and the Markdown summary.
    pub fn total_line(&self) -> String {
        format!(
            "executed {}, passed {}, failed {}, xfail {}, skipped {}",
            self.executed, self.passed, self.failed, self.xfail, self.skipped
        )
    }
}

/// Backend columns: `report.backends` in order, then any backend that only appears in the
/// cases (a hand-built or partly merged report), so that no result is dropped.
pub(crate) fn backend_names(report: &Report) -> Vec<&str> {
    let mut names: Vec<&str> = report.backends.iter().map(|b| b.name.as_str()).collect();
    for c in &report.cases {
        if !names.contains(&c.backend.as_str()) {
            names.push(&c.backend);
        }
    }
    names
}

/// Rows, sorted, and for each row the tally on each backend of `backends`. A case's row is
/// `row(case)`: its op ([`by_op`]), or its op and block format ([`by_quant`]).
pub(crate) fn matrix<'a>(
    cases: &[&'a CaseResult],
    backends: &[&str],
    row: fn(&'a CaseResult) -> Option<&'a str>,
) -> Vec<(&'a str, Vec<Tally>)> {
    let rows: BTreeSet<&str> = cases.iter().copied().filter_map(row).collect();
    rows.into_iter()
        .map(|name| {
            let tallies = backends
                .iter()
                .map(|b| {
                    Tally::of(
                        cases
                            .iter()
                            .copied()
                            .filter(|c| row(c) == Some(name) && c.backend == *b),
                    )
                })
                .collect();
            (name, tallies)
        })
        .collect()
}

pub(crate) fn by_op(case: &CaseResult) -> Option<&str> {
    Some(&case.op)
}

/// `qlinear(q4_0)`: a quantized op's case by its op and block format, as its signature
/// begins; `None` for the other ops.
pub(crate) fn by_quant(case: &CaseResult) -> Option<&str> {
    let quantized = case.op.parse::<OpKind>().is_ok_and(OpKind::is_quantized);
    quantized
        .then(|| case.signature.split(' ').next())
        .flatten()
}
