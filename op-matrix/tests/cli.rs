//! The `op-matrix` binary end to end on this machine's backends: its exit status, its
//! reports, fault injection, expected-failure lists, `--require`, merging and zero cases.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use op_matrix::report::Report;
use op_matrix::subject::Subject;

fn op_matrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_op-matrix"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs with `--report DIR` and returns the exit success and the JSON report.
fn run_with_report(args: &[&str]) -> (bool, Report, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = args.to_vec();
    all.extend(["--report", dir.path().to_str().unwrap()]);
    let out = op_matrix(&all);
    let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    (
        out.status.success(),
        serde_json::from_str(&json).unwrap(),
        dir,
    )
}

#[test]
fn the_cpu_passes_and_other_backends_are_reported_not_compiled() {
    let (ok, report, dir) = run_with_report(&[]);
    assert!(ok, "{:?}", report.failures().collect::<Vec<_>>());
    let cpu: Vec<_> = report.cases.iter().filter(|c| c.backend == "cpu").collect();
    assert!(cpu.iter().all(|c| c.outcome.label() == "pass"));
    assert!(cpu.iter().any(|c| c.op == "e2e"), "end-to-end cases ran");
    for backend in ["cuda:0", "metal:0"] {
        let info = report.backends.iter().find(|b| b.name == backend).unwrap();
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(info.status.starts_with("not compiled"), "{info:?}");
            assert!(report
                .cases
                .iter()
                .filter(|c| c.backend == backend)
                .all(|c| c.outcome.label() == "skipped"));
        }
    }
    for dtype in ["f32", "bf16", "f16"] {
        let ops: std::collections::BTreeSet<&str> = cpu
            .iter()
            .filter(|c| c.dtype == dtype)
            .map(|c| c.op.as_str())
            .collect();
        for op in common::forward_pass_ops()
            .map(|op| op.name())
            .chain([Subject::EndToEnd.name()])
        {
            assert!(ops.contains(op), "{dtype}: {op} missing from the report");
        }
    }
    for file in ["ops.md", "junit.xml"] {
        assert!(dir.path().join(file).exists(), "{file} written");
    }
}

#[test]
fn every_executed_case_names_op_dtype_backend_phase_and_outcome() {
    let (_, _, dir) = run_with_report(&["--backend", "cpu", "--dtype", "bf16"]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let cases = json["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        for key in ["op", "dtype", "backend", "phase", "outcome"] {
            assert!(c[key].is_string(), "{key} missing in {c}");
        }
        assert_eq!(c["dtype"], "bf16");
    }
}

#[test]
fn an_injected_missing_kernel_fails_the_run_and_is_named() {
    let (ok, report, _dir) = run_with_report(&[
        "--backend",
        "cpu",
        "--inject-unsupported",
        "rope",
        "--no-e2e",
    ]);
    assert!(!ok);
    let failed: std::collections::BTreeSet<&str> =
        report.failures().map(|c| c.op.as_str()).collect();
    assert_eq!(failed, ["rope"].into());
    assert!(report
        .failures()
        .all(|c| c.outcome.label() == "unsupported" && c.outcome.detail().contains("rope")));
}

#[test]
fn an_expected_failure_passes_the_run_and_an_unexpected_pass_fails_it() {
    let lists = tempfile::tempdir().unwrap();
    let write = |text: &str| std::fs::write(lists.path().join("cpu.toml"), text).unwrap();
    let list_dir = lists.path().to_str().unwrap().to_string();
    let base = [
        "--backend",
        "cpu",
        "--dtype",
        "f32",
        "--no-e2e",
        "--xfail-dir",
        &list_dir,
    ];
    let args =
        |extra: &[&'static str]| -> Vec<&str> { base.iter().chain(extra).copied().collect() };
    write("[[xfail]]\nop = \"rope\"\ndtype = \"f32\"\nreason = \"pretend rope is missing\"\n");
    let (ok, report, _d) = run_with_report(&args(&["--inject-unsupported", "rope"]));
    assert!(ok, "expected failures do not fail the run");
    assert!(report
        .cases
        .iter()
        .filter(|c| c.op == "rope")
        .all(|c| c.outcome.label() == "xfail"));

    let (ok, report, _d) = run_with_report(&args(&[]));
    assert!(!ok, "a listed case that passes must fail the run");
    let unexpected: Vec<_> = report.failures().collect();
    assert!(unexpected
        .iter()
        .all(|c| c.op == "rope" && c.outcome.label() == "unexpected_pass"));
    assert!(unexpected[0]
        .outcome
        .detail()
        .contains("remove it from the list"));
}

#[test]
fn a_required_backend_that_is_absent_fails_with_the_reason() {
    if cfg!(feature = "metal") {
        return;
    }
    let out = op_matrix(&["--require", "metal"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--require metal: metal is not compiled"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_backend_filter_that_matches_nothing_compiled_is_an_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let out = op_matrix(&["--backend", "cuda"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("selects no backend compiled"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn zero_executed_cases_fail_the_run() {
    let out = op_matrix(&["--backend", "cpu", "--op", "e2e", "--no-e2e"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("zero cases were executed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reports_from_two_runners_merge_into_one_matrix() {
    let (_, _, f32_dir) = run_with_report(&["--backend", "cpu", "--dtype", "f32", "--no-e2e"]);
    let (_, _, bf16_dir) = run_with_report(&["--backend", "cpu", "--dtype", "bf16", "--no-e2e"]);
    let a = f32_dir.path().join("report.json");
    let b = bf16_dir.path().join("report.json");
    let (ok, merged, _d) = run_with_report(&["--merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(ok);
    let dtypes: std::collections::BTreeSet<&str> =
        merged.cases.iter().map(|c| c.dtype.as_str()).collect();
    assert_eq!(dtypes, ["bf16", "f32"].into());
    let count = |p: &Path| {
        serde_json::from_str::<Report>(&std::fs::read_to_string(p).unwrap())
            .unwrap()
            .cases
            .len()
    };
    assert_eq!(merged.cases.len(), count(&a) + count(&b));
}

#[test]
fn unknown_filters_are_errors() {
    let out = op_matrix(&["--op", "ropee"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&out).contains("unknown op `ropee`"),
        "{}",
        stderr(&out)
    );
    let out = op_matrix(&["--dtype", "f64"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&out).contains("`f64` is not traced"),
        "{}",
        stderr(&out)
    );
    // An op of the vocabulary that the model does not launch selects nothing.
    let out = op_matrix(&["--op", "tanh"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--op tanh is not an op of the inventory"));
}

#[test]
fn the_metal_probe_says_when_metal_is_not_exercised_and_fails_only_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let out = op_matrix(&["--probe-metal", "--report", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = std::fs::read_to_string(dir.path().join("metal-probe.json")).unwrap();
    let probe: op_matrix::probe::Probe = serde_json::from_str(&json).unwrap();
    let md = std::fs::read_to_string(dir.path().join("metal-probe.md")).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&md));
    if !cfg!(feature = "metal") {
        assert!(!probe.opened && probe.status.starts_with("not compiled"));
    }
    if probe.opened {
        assert!(
            probe.facts.is_some() && probe.product.is_some(),
            "{probe:?}"
        );
        return;
    }
    assert!(
        md.contains("Metal device did not open on this runner: Metal not exercised"),
        "{md}"
    );
    let required = op_matrix(&["--probe-metal", "--require", "metal"]);
    assert!(!required.status.success());
    assert!(
        stderr(&required).contains("--require metal: metal:0 is"),
        "{}",
        stderr(&required)
    );
}
