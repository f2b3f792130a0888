//! The terminal summary: the op × backend matrix in plain ASCII, then a one-line total.

use comfy_table::{presets, Table};

use super::{backend_names, by_op, matrix, Tally};
use crate::report::{CaseResult, Report};

/// Renders the matrix over all dtypes with cells like `ok 12`, `ok 10 (2 xfail)`,
/// `FAIL 3/12` and `skipped`, followed by `executed N, passed N, failed N, xfail N,
/// skipped N`.
pub fn render(report: &Report) -> String {
    let backends = backend_names(report);
    let cases: Vec<&CaseResult> = report.cases.iter().collect();

    let mut table = Table::new();
    // ASCII only: CI logs and plain terminals mangle box-drawing characters.
    table.load_preset(presets::ASCII_FULL_CONDENSED);
    table.set_header(std::iter::once("op").chain(backends.iter().copied()));
    for (op, tallies) in matrix(&cases, &backends, by_op) {
        table.add_row(std::iter::once(op.to_string()).chain(tallies.iter().map(cell)));
    }

    format!(
        "{table}\n{}\n",
        Tally::of(cases.iter().copied()).total_line()
    )
}

/// The terminal cell text, e.g. `ok 10 (2 xfail)`, `FAIL 3/12`, `skipped`.
pub fn cell(t: &Tally) -> String {
    t.cell("ok", "FAIL", "skipped")
}
