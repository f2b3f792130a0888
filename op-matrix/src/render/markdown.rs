//! The Markdown op matrix, in the manner of llama.cpp's `docs/ops.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{backend_names, by_op, by_quant, matrix, Tally};
use crate::report::{CaseResult, Report};

const PASS: &str = "✅";
const FAIL: &str = "❌";
const SKIPPED: &str = "⏭️ skipped";

/// Renders the whole report: header, legend, the op × backend matrix over all dtypes, one
/// matrix per dtype, and the list of failing cases.
pub fn render(report: &Report) -> String {
    let backends = backend_names(report);
    let all: Vec<&CaseResult> = report.cases.iter().collect();
    let mut out = String::new();

    out.push_str("# Op matrix\n\n");
    let _ = writeln!(out, "candle {}\n", escape(&report.candle_version));
    for note in &report.notes {
        let _ = writeln!(out, "- {}", escape(note));
    }
    if !report.notes.is_empty() {
        out.push('\n');
    }
    for b in &report.backends {
        let _ = writeln!(
            out,
            "- {}: {}; {}",
            code(&b.name),
            escape(&b.status),
            escape(&b.device)
        );
    }
    if !report.backends.is_empty() {
        out.push('\n');
    }

    out.push_str("## Legend\n\n");
    let _ = writeln!(
        out,
        "- {PASS} N: every executed case passed or is an expected failure; N passed, \
         expected failures counted as `(M xfail)`"
    );
    let _ = writeln!(
        out,
        "- {FAIL} F/N: F of the N executed cases failed (mismatch, unsupported, panic or \
         unexpected pass)"
    );
    let _ = writeln!(
        out,
        "- {SKIPPED}: nothing executed (backend absent or not compiled); `(K skipped)` \
         after a count means K cases of the cell did not run"
    );
    let _ = writeln!(
        out,
        "\nTotal: {}.\n",
        Tally::of(all.iter().copied()).total_line()
    );

    out.push_str("## All dtypes\n\n");
    table(&mut out, &all, &backends, by_op);

    let quantized: Vec<&CaseResult> = all
        .iter()
        .copied()
        .filter(|c| by_quant(c).is_some())
        .collect();
    if !quantized.is_empty() {
        out.push_str("## Quantized ops by block format\n\n");
        table(&mut out, &quantized, &backends, by_quant);
    }

    let dtypes: BTreeSet<&str> = report.cases.iter().map(|c| c.dtype.as_str()).collect();
    if !dtypes.is_empty() {
        out.push_str("## By dtype\n\n");
    }
    for dtype in dtypes {
        let cases: Vec<&CaseResult> = all.iter().copied().filter(|c| c.dtype == dtype).collect();
        let _ = writeln!(out, "### {}\n", escape(dtype));
        table(&mut out, &cases, &backends, by_op);
    }

    out.push_str("## Failing cases\n\n");
    let mut any = false;
    for c in report.failures() {
        any = true;
        let _ = writeln!(
            out,
            "- {} {} {}: **{}**: {}",
            code(&c.backend),
            code(&c.dtype),
            code(&c.signature),
            c.outcome.label(),
            escape(&c.outcome.detail())
        );
    }
    if !any {
        out.push_str("None.\n");
    }
    out
}

fn table<'a>(
    out: &mut String,
    cases: &[&'a CaseResult],
    backends: &[&str],
    row: fn(&'a CaseResult) -> Option<&'a str>,
) {
    out.push_str("| Op |");
    for b in backends {
        let _ = write!(out, " {} |", escape(b));
    }
    out.push_str("\n|---|");
    for _ in backends {
        out.push_str("---|");
    }
    out.push('\n');
    for (op, tallies) in matrix(cases, backends, row) {
        let _ = write!(out, "| {} |", code(op));
        for t in tallies {
            let _ = write!(out, " {} |", cell(&t));
        }
        out.push('\n');
    }
    out.push('\n');
}

/// The Markdown cell text, e.g. `✅ 10 (2 xfail)`, `❌ 3/12`, `⏭️ skipped`.
pub fn cell(t: &Tally) -> String {
    t.cell(PASS, FAIL, SKIPPED)
}

/// Inline code; a value holding a backtick gets a longer fence, and table pipes are escaped
/// because GitHub splits cells on them even inside code.
fn code(s: &str) -> String {
    let s = one_line(s).replace('|', "\\|");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Plain text with Markdown's inline punctuation escaped, so that error texts such as
/// `Tensor<f32>` or `a*b` show as written.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in one_line(s).chars() {
        if matches!(
            ch,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '&' | '~'
        ) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// List items and table cells end at a newline.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
