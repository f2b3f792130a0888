//! Renderers and report merging, on small reports built by hand with every kind of outcome.

use op_matrix::render::{junit, markdown, table, Tally};
use op_matrix::report::{BackendInfo, CaseResult, Report};
use op_matrix_core::outcome::{Errors, Outcome};

fn backend(name: &str, status: &str, device: &str) -> BackendInfo {
    BackendInfo {
        name: name.into(),
        status: status.into(),
        device: device.into(),
    }
}

fn case(op: &str, dtype: &str, signature: &str, backend: &str, outcome: Outcome) -> CaseResult {
    CaseResult {
        op: op.into(),
        signature: signature.into(),
        dtype: dtype.into(),
        backend: backend.into(),
        phase: "prefill".into(),
        outcome,
    }
}

fn pass() -> Outcome {
    Outcome::Pass {
        errors: Errors::default(),
    }
}

fn mismatch() -> Outcome {
    Outcome::Mismatch {
        errors: Errors {
            nmse: 0.5,
            max_abs: 2.0,
            max_rel: 1.0,
            first_bad: Some(7),
        },
        reason: "tolerance exceeded".into(),
    }
}

fn skipped() -> Outcome {
    Outcome::Skipped {
        reason: "cuda not compiled".into(),
    }
}

const ROPE_BF16: &str = "rope bf16[1, 4, 27, 32], bf16[27, 16], bf16[27, 16]";
const ROPE_BF16_DECODE: &str = "rope bf16[1, 4, 1, 32], bf16[1, 16], bf16[1, 16]";
const ROPE_F32: &str = "rope f32[1, 4, 27, 32], f32[27, 16], f32[27, 16]";
const MATMUL_BF16_A: &str = "matmul bf16[2, 3], bf16[3, 4]";
const MATMUL_BF16_B: &str = "matmul bf16[2, 3], bf16[3, 4]ᵀ";
const MATMUL_F32: &str = "matmul f32[2, 3], f32[3, 4]";
const SOFTMAX_F32: &str = "softmax_last_dim f32[4, 27]";
const CONV_F32: &str = "conv2d f32[1, 3, 8, 8], f32[4, 3, 3, 3]";

/// Every outcome kind: on cpu everything passes; on cuda:0 there are passes, an expected
/// failure, a mismatch, an unsupported op, a panic, an unexpected pass and a skip.
fn sample() -> Report {
    let mut cases = Vec::new();
    for sig in [ROPE_BF16, ROPE_BF16_DECODE] {
        cases.push(case("rope", "bf16", sig, "cpu", pass()));
        cases.push(case("rope", "bf16", sig, "cuda:0", pass()));
    }
    cases.push(case("rope", "f32", ROPE_F32, "cpu", pass()));
    cases.push(case(
        "rope",
        "f32",
        ROPE_F32,
        "cuda:0",
        Outcome::ExpectedFailure {
            reason: "known f32 rope drift".into(),
            failure: Box::new(mismatch()),
        },
    ));
    for (dtype, sig) in [
        ("bf16", MATMUL_BF16_A),
        ("bf16", MATMUL_BF16_B),
        ("f32", MATMUL_F32),
    ] {
        cases.push(case("matmul", dtype, sig, "cpu", pass()));
    }
    cases.push(case("matmul", "bf16", MATMUL_BF16_A, "cuda:0", mismatch()));
    cases.push(case(
        "matmul",
        "bf16",
        MATMUL_BF16_B,
        "cuda:0",
        Outcome::Unsupported {
            error: "no cuda kernel for matmul_t <bf16>".into(),
        },
    ));
    cases.push(case(
        "matmul",
        "f32",
        MATMUL_F32,
        "cuda:0",
        Outcome::Panic {
            message: "index out of bounds".into(),
        },
    ));
    cases.push(case("softmax", "f32", SOFTMAX_F32, "cpu", pass()));
    cases.push(case(
        "softmax",
        "f32",
        SOFTMAX_F32,
        "cuda:0",
        Outcome::UnexpectedPass {
            reason: "flaky kernel".into(),
        },
    ));
    cases.push(case("conv2d", "f32", CONV_F32, "cpu", pass()));
    cases.push(case("conv2d", "f32", CONV_F32, "cuda:0", skipped()));
    Report {
        candle_version: "0.11.1".into(),
        notes: Vec::new(),
        backends: vec![
            backend("cpu", "present", "host x86_64"),
            backend("cuda:0", "present", "NVIDIA H100, driver 550"),
        ],
        cases,
    }
}

/// The cells of the Markdown table row for `op` in `section`.
fn md_row<'a>(section: &'a str, op: &str) -> Vec<&'a str> {
    let prefix = format!("| `{op}` |");
    let line = section
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row for {op} in:\n{section}"));
    cells(line)
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

/// The text of `doc` from the heading `start` up to the next heading of level 2 or 3.
fn section<'a>(doc: &'a str, start: &str) -> &'a str {
    let from = doc
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{doc}"));
    let rest = &doc[from + start.len()..];
    let end = rest
        .find("\n## ")
        .into_iter()
        .chain(rest.find("\n### "))
        .min();
    &rest[..end.unwrap_or(rest.len())]
}

#[test]
fn markdown_header_lists_candle_and_backends() {
    let md = markdown::render(&sample());
    assert!(md.starts_with("# Op matrix\n"), "{md}");
    assert!(md.contains("candle 0.11.1"), "{md}");
    assert!(md.contains("- `cpu`: present; host x86\\_64"), "{md}");
    assert!(
        md.contains("- `cuda:0`: present; NVIDIA H100, driver 550"),
        "{md}"
    );
    assert!(md.contains("## Legend"), "{md}");
    assert!(
        md.contains("Total: executed 15, passed 10, failed 4, xfail 1, skipped 1."),
        "{md}"
    );
}

#[test]
fn markdown_matrix_cells_over_all_dtypes() {
    let md = markdown::render(&sample());
    let all = section(&md, "## All dtypes");
    assert_eq!(cells(all.lines().nth(2).unwrap()), ["Op", "cpu", "cuda:0"]);
    // Rows are sorted by op name.
    let ops: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| cells(l)[0])
        .collect();
    assert_eq!(ops, ["`conv2d`", "`matmul`", "`rope`", "`softmax`"]);
    assert_eq!(md_row(all, "conv2d"), ["`conv2d`", "✅ 1", "⏭️ skipped"]);
    assert_eq!(md_row(all, "matmul"), ["`matmul`", "✅ 3", "❌ 3/3"]);
    assert_eq!(md_row(all, "rope"), ["`rope`", "✅ 3", "✅ 2 (1 xfail)"]);
    assert_eq!(md_row(all, "softmax"), ["`softmax`", "✅ 1", "❌ 1/1"]);
}

#[test]
fn markdown_has_one_matrix_per_dtype() {
    let md = markdown::render(&sample());
    let bf16 = section(&md, "### bf16");
    assert_eq!(md_row(bf16, "matmul"), ["`matmul`", "✅ 2", "❌ 2/2"]);
    assert_eq!(md_row(bf16, "rope"), ["`rope`", "✅ 2", "✅ 2"]);
    assert!(
        !bf16.contains("`softmax`") && !bf16.contains("`conv2d`"),
        "{bf16}"
    );

    let f32 = section(&md, "### f32");
    assert_eq!(md_row(f32, "conv2d"), ["`conv2d`", "✅ 1", "⏭️ skipped"]);
    assert_eq!(md_row(f32, "matmul"), ["`matmul`", "✅ 1", "❌ 1/1"]);
    assert_eq!(md_row(f32, "rope"), ["`rope`", "✅ 1", "✅ 0 (1 xfail)"]);
    assert_eq!(md_row(f32, "softmax"), ["`softmax`", "✅ 1", "❌ 1/1"]);
    assert_eq!(md.matches("### ").count(), 2, "{md}");
}

#[test]
fn markdown_lists_exactly_the_failing_cases() {
    let md = markdown::render(&sample());
    let failing = section(&md, "## Failing cases");
    let items: Vec<&str> = failing.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(items.len(), 4, "{failing}");
    assert!(
        items.iter().all(|l| l.starts_with("- `cuda:0` ")),
        "{failing}"
    );
    assert_eq!(
        items[0],
        "- `cuda:0` `bf16` `matmul bf16[2, 3], bf16[3, 4]`: **mismatch**: tolerance exceeded; \
         nmse 5.00e-1, max abs 2.00e0, max rel 1.00e0, first bad index 7"
    );
    // Markdown punctuation in error texts is escaped so that it shows as written.
    assert_eq!(
        items[1],
        format!(
            "- `cuda:0` `bf16` `{MATMUL_BF16_B}`: **unsupported**: \
             no cuda kernel for matmul\\_t \\<bf16\\>"
        )
    );
    assert_eq!(
        items[2],
        format!("- `cuda:0` `f32` `{MATMUL_F32}`: **panic**: panic: index out of bounds")
    );
    assert_eq!(
        items[3],
        format!(
            "- `cuda:0` `f32` `{SOFTMAX_F32}`: **unexpected_pass**: unexpected pass: \
             remove it from the list (listed because: flaky kernel)"
        )
    );
    assert!(!failing.contains("xfail") && !failing.contains(ROPE_F32));
}

#[test]
fn markdown_without_failures_says_none() {
    let mut report = sample();
    report.cases.retain(|c| !c.outcome.is_failure());
    let md = markdown::render(&report);
    assert!(section(&md, "## Failing cases").contains("None."), "{md}");
    assert_eq!(
        md_row(section(&md, "## All dtypes"), "matmul"),
        ["`matmul`", "✅ 3", "⏭️ skipped"]
    );
}

#[test]
fn cell_text_rules() {
    let t = |executed, passed, failed, xfail, skipped| Tally {
        executed,
        passed,
        failed,
        xfail,
        skipped,
    };
    assert_eq!(markdown::cell(&t(12, 12, 0, 0, 0)), "✅ 12");
    assert_eq!(markdown::cell(&t(12, 10, 0, 2, 0)), "✅ 10 (2 xfail)");
    assert_eq!(markdown::cell(&t(12, 9, 3, 0, 0)), "❌ 3/12");
    assert_eq!(markdown::cell(&t(0, 0, 0, 0, 4)), "⏭️ skipped");
    assert_eq!(markdown::cell(&t(0, 0, 0, 0, 0)), "⏭️ skipped");
    assert_eq!(markdown::cell(&t(5, 5, 0, 0, 2)), "✅ 5 (2 skipped)");
    assert_eq!(table::cell(&t(12, 10, 0, 2, 0)), "ok 10 (2 xfail)");
    assert_eq!(table::cell(&t(12, 8, 3, 1, 0)), "FAIL 3/12 (1 xfail)");
    assert_eq!(table::cell(&t(0, 0, 0, 0, 1)), "skipped");
}

#[test]
fn tally_counts_every_outcome_kind() {
    let report = sample();
    let cuda: Vec<&CaseResult> = report
        .cases
        .iter()
        .filter(|c| c.backend == "cuda:0")
        .collect();
    assert_eq!(
        Tally::of(cuda),
        Tally {
            executed: 7,
            passed: 2,
            failed: 4,
            xfail: 1,
            skipped: 1
        }
    );
}

/// The XML of the test suite named `name`, up to its closing tag.
fn suite<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<testsuite name=\"{name}\"");
    let from = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no suite {name} in:\n{xml}"));
    let len = xml[from..].find("</testsuite>").expect("suite not closed");
    &xml[from..from + len]
}

#[test]
fn junit_has_one_suite_per_backend_with_right_counts() {
    let xml = junit::render(&sample()).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    // JUnit counts skipped cases among the tests.
    assert!(
        xml.contains("<testsuites name=\"op-matrix\" tests=\"16\" skipped=\"1\" failures=\"4\""),
        "{xml}"
    );

    let cpu = suite(&xml, "cpu");
    assert_eq!(cpu.matches("<testcase ").count(), 8, "{cpu}");
    assert_eq!(cpu.matches("<failure").count(), 0, "{cpu}");
    assert_eq!(cpu.matches("<skipped").count(), 0, "{cpu}");
    assert!(
        cpu.contains("failures=\"0\"") && cpu.contains("tests=\"8\""),
        "{cpu}"
    );

    let cuda = suite(&xml, "cuda:0");
    assert_eq!(cuda.matches("<testcase ").count(), 8, "{cuda}");
    assert_eq!(cuda.matches("<failure").count(), 4, "{cuda}");
    assert_eq!(cuda.matches("<skipped").count(), 1, "{cuda}");
    assert!(
        cuda.contains("failures=\"4\"") && cuda.contains("skipped=\"1\""),
        "{cuda}"
    );
    assert!(cuda.contains("NVIDIA H100, driver 550"), "{cuda}");
}

#[test]
fn junit_cases_carry_names_types_and_notes() {
    let xml = junit::render(&sample()).unwrap();
    let cuda = suite(&xml, "cuda:0");
    assert!(
        cuda.contains(&format!(
            "<testcase name=\"bf16 {MATMUL_BF16_A}\" classname=\"matmul\""
        )),
        "{cuda}"
    );
    for label in ["mismatch", "unsupported", "panic", "unexpected_pass"] {
        assert_eq!(
            cuda.matches(&format!("type=\"{label}\"")).count(),
            1,
            "{label}: {cuda}"
        );
    }
    // XML-escaped detail of the unsupported case.
    assert!(
        cuda.contains("no cuda kernel for matmul_t &lt;bf16&gt;"),
        "{cuda}"
    );
    // The expected failure passes, with its reason as output.
    assert!(
        cuda.contains("<system-out>expected: known f32 rope drift (mismatch)</system-out>"),
        "{cuda}"
    );
    assert!(cuda.contains("cuda not compiled"), "{cuda}");
}

#[test]
fn table_shows_ascii_cells_and_total() {
    let out = table::render(&sample());
    assert!(out.is_ascii(), "{out}");
    let row = |op: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| cells(l).first() == Some(&op))
            .unwrap_or_else(|| panic!("no row for {op} in:\n{out}"));
        cells(line).into_iter().map(String::from).collect()
    };
    assert_eq!(row("op"), ["op", "cpu", "cuda:0"]);
    assert_eq!(row("conv2d"), ["conv2d", "ok 1", "skipped"]);
    assert_eq!(row("matmul"), ["matmul", "ok 3", "FAIL 3/3"]);
    assert_eq!(row("rope"), ["rope", "ok 3", "ok 2 (1 xfail)"]);
    assert_eq!(row("softmax"), ["softmax", "ok 1", "FAIL 1/1"]);
    assert_eq!(
        out.lines().last(),
        Some("executed 15, passed 10, failed 4, xfail 1, skipped 1")
    );
}

/// What a CPU-only runner reports: cuda:0 not compiled, its cases skipped.
fn cpu_runner() -> Report {
    Report {
        candle_version: "0.11.1".into(),
        notes: Vec::new(),
        backends: vec![
            backend("cpu", "present", "host"),
            backend("cuda:0", "not compiled", "-"),
        ],
        cases: vec![
            case("rope", "bf16", ROPE_BF16, "cpu", pass()),
            case("rope", "bf16", ROPE_BF16, "cuda:0", skipped()),
            case("matmul", "bf16", MATMUL_BF16_A, "cpu", pass()),
            case("matmul", "bf16", MATMUL_BF16_A, "cuda:0", skipped()),
        ],
    }
}

/// What a CUDA runner reports; its cpu row for rope differs, to see which one wins.
fn cuda_runner() -> Report {
    Report {
        candle_version: "0.11.1".into(),
        notes: Vec::new(),
        backends: vec![
            backend("cpu", "present", "gpu host"),
            backend("cuda:0", "present", "NVIDIA H100"),
        ],
        cases: vec![
            case("rope", "bf16", ROPE_BF16, "cpu", mismatch()),
            case("rope", "bf16", ROPE_BF16, "cuda:0", pass()),
            case("matmul", "bf16", MATMUL_BF16_A, "cuda:0", mismatch()),
        ],
    }
}

fn outcome_of<'a>(r: &'a Report, sig: &str, backend: &str) -> &'a Outcome {
    let found: Vec<&CaseResult> = r
        .cases
        .iter()
        .filter(|c| c.signature == sig && c.backend == backend)
        .collect();
    assert_eq!(found.len(), 1, "{sig} on {backend}: {found:?}");
    &found[0].outcome
}

#[test]
fn merge_replaces_skipped_rows_with_executed_ones() {
    let merged = Report::merge([cpu_runner(), cuda_runner()]);
    assert_eq!(merged.candle_version, "0.11.1");
    assert_eq!(
        merged.backends,
        [
            backend("cpu", "present", "host"),
            backend("cuda:0", "present", "NVIDIA H100")
        ]
    );
    assert_eq!(merged.cases.len(), 4);
    assert_eq!(outcome_of(&merged, ROPE_BF16, "cuda:0"), &pass());
    assert_eq!(outcome_of(&merged, MATMUL_BF16_A, "cuda:0"), &mismatch());
    // The first runner's executed cpu row is kept.
    assert_eq!(outcome_of(&merged, ROPE_BF16, "cpu"), &pass());
    assert_eq!(outcome_of(&merged, MATMUL_BF16_A, "cpu"), &pass());
    assert_eq!(merged.executed(), 4);
    assert!(merged.failed());

    let md = markdown::render(&merged);
    let all = section(&md, "## All dtypes");
    assert_eq!(md_row(all, "rope"), ["`rope`", "✅ 1", "✅ 1"]);
    assert_eq!(md_row(all, "matmul"), ["`matmul`", "✅ 1", "❌ 1/1"]);
}

#[test]
fn merge_keeps_executed_rows_whatever_the_order() {
    let merged = Report::merge([cuda_runner(), cpu_runner()]);
    let cuda = merged.backends.iter().find(|b| b.name == "cuda:0").unwrap();
    assert_eq!(cuda.status, "present");
    assert_eq!(merged.backends.len(), 2);
    assert_eq!(merged.cases.len(), 4);
    assert_eq!(outcome_of(&merged, ROPE_BF16, "cuda:0"), &pass());
    assert_eq!(outcome_of(&merged, MATMUL_BF16_A, "cuda:0"), &mismatch());
    // Here the CUDA runner came first, so its cpu row for rope wins.
    assert_eq!(outcome_of(&merged, ROPE_BF16, "cpu"), &mismatch());
    assert!(merged.cases.iter().all(|c| c.outcome.executed()));
}

#[test]
fn failed_when_nothing_executed() {
    assert!(Report::default().failed());
    let only_skipped = Report {
        cases: vec![case("rope", "bf16", ROPE_BF16, "cuda:0", skipped())],
        ..Report::default()
    };
    assert_eq!(only_skipped.executed(), 0);
    assert!(only_skipped.failed());
}

#[test]
fn failed_on_unexpected_pass_but_not_on_passes_and_xfails() {
    let mut report = Report {
        candle_version: "0.11.1".into(),
        notes: Vec::new(),
        backends: vec![backend("cpu", "present", "host")],
        cases: vec![
            case("rope", "bf16", ROPE_BF16, "cpu", pass()),
            case(
                "matmul",
                "bf16",
                MATMUL_BF16_A,
                "cpu",
                Outcome::ExpectedFailure {
                    reason: "known".into(),
                    failure: Box::new(Outcome::Unsupported {
                        error: "no kernel".into(),
                    }),
                },
            ),
        ],
    };
    assert!(!report.failed());
    assert_eq!(report.failures().count(), 0);

    report.cases.push(case(
        "softmax",
        "f32",
        SOFTMAX_F32,
        "cpu",
        Outcome::UnexpectedPass {
            reason: "fixed upstream".into(),
        },
    ));
    assert!(report.failed());
    assert_eq!(report.failures().count(), 1);
}

#[test]
fn markdown_shows_quantized_ops_by_block_format() {
    let q4 = "qlinear(q4_0) f32[1, 64], u8[96, 36]";
    let q4k = "qlinear(q4_k) bf16[1, 256], u8[96, 144]";
    let embed = "qembed(q8_0) u32[5], u8[512, 68]";
    let unsupported = Outcome::Unsupported {
        error: "no metal implementation for q4_k".into(),
    };
    let report = Report {
        candle_version: "0.11.1".into(),
        notes: vec![],
        backends: vec![
            backend("cpu", "present", "host"),
            backend("metal:0", "present", "M2"),
        ],
        cases: vec![
            case("qlinear", "f32", q4, "cpu", pass()),
            case("qlinear", "f32", q4, "metal:0", pass()),
            case("qlinear", "bf16", q4k, "cpu", pass()),
            case("qlinear", "bf16", q4k, "metal:0", unsupported),
            case("qembed", "f32", embed, "cpu", pass()),
            case("qembed", "f32", embed, "metal:0", pass()),
            case("matmul", "f32", MATMUL_F32, "cpu", pass()),
            case("affine", "f32", "affine(mul=2,add=1) f32[4]", "cpu", pass()),
        ],
    };
    let md = markdown::render(&report);
    let quantized = section(&md, "## Quantized ops by block format");
    let rows: Vec<&str> = quantized
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| cells(l)[0])
        .collect();
    assert_eq!(
        rows,
        ["`qembed(q8_0)`", "`qlinear(q4_0)`", "`qlinear(q4_k)`"]
    );
    assert_eq!(
        md_row(quantized, "qlinear(q4_k)"),
        ["`qlinear(q4_k)`", "✅ 1", "❌ 1/1"]
    );
    assert_eq!(
        md_row(quantized, "qlinear(q4_0)"),
        ["`qlinear(q4_0)`", "✅ 1", "✅ 1"]
    );

    let plain = Report {
        cases: report.cases[6..].to_vec(),
        ..report
    };
    assert!(!markdown::render(&plain).contains("Quantized ops"));
}
