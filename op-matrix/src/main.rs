//! `op-matrix`: replay the Gemma 3 op inventory on every backend against the CPU goldens.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Parser;
use inference::ops::OpKind;
use op_matrix::backend::Kind;
use op_matrix::embedded;
use op_matrix::report::Report;
use op_matrix::run::{self, Inputs, Options};
use op_matrix::subject::Subject;
use op_matrix::{probe, render, xfail};
use op_matrix_core::golden::Source;

#[derive(Parser)]
#[command(
    name = "op-matrix",
    version,
    about = "Every op of the Gemma 3 graph, on every backend, against CPU goldens"
)]
struct Cli {
    /// Backends to run: any of cpu, cuda, metal (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    backend: Vec<Kind>,
    /// Fail unless these backends are present (comma-separated).
    #[arg(long, value_delimiter = ',')]
    require: Vec<Kind>,
    /// Only these dtypes: f32, bf16, f16 (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = traced_dtype)]
    dtype: Vec<DType>,
    /// Only these ops, by name (e.g. rope,matmul; `e2e` for the whole-model check).
    #[arg(long, value_delimiter = ',')]
    op: Vec<Subject>,
    /// Write report.json, ops.md and junit.xml into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Combine JSON reports from several runners into one matrix instead of running.
    #[arg(long, num_args = 1..)]
    merge: Vec<PathBuf>,
    /// Make OP's replay report unsupported on every backend, to test the harness itself.
    #[arg(long, value_name = "OP")]
    inject_unsupported: Option<OpKind>,
    /// Read goldens from this directory instead of the embedded ones.
    #[arg(long)]
    golden_dir: Option<PathBuf>,
    /// Read expected-failure lists (<backend>.toml) from this directory instead of the embedded ones.
    #[arg(long)]
    xfail_dir: Option<PathBuf>,
    /// A fact about this runner to record in the report (card, driver, build); repeatable.
    #[arg(long)]
    note: Vec<String>,
    /// Skip the end-to-end model comparison.
    #[arg(long)]
    no_e2e: bool,
    /// Also run N random cases per op (odd sizes, strided and broadcast inputs) against the CPU.
    #[arg(long, default_value_t = 0, value_name = "N")]
    fuzz: usize,
    /// Probe Metal device 0 instead of running: whether it opens, its name and GPU families,
    /// and one simdgroup-matrix product against the CPU. With `--report`, writes
    /// metal-probe.json and metal-probe.md. Fails only with `--require metal` and no device.
    #[arg(long, conflicts_with = "merge")]
    probe_metal: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OP_MATRIX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run_cli(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns whether the matrix passed.
fn run_cli(cli: Cli) -> Result<bool> {
    if cli.probe_metal {
        return probe_metal(&cli);
    }
    // A path named in GEMMA3_CPU_KERNELS that this CPU lacks stops the run here.
    inference::ops::cpu::kernel_path::from_env()?;
    let mut report = if cli.merge.is_empty() {
        let mut report = run_matrix(&cli)?;
        let path = inference::ops::cpu::kernel_path::active();
        report.notes.push(format!("cpu kernel path: {path}"));
        println!("cpu kernel path: {path}");
        report
    } else {
        merge(&cli.merge)?
    };
    report.notes.extend(cli.note.iter().cloned());
    print!("{}", render::table::render(&report));
    for b in &report.backends {
        println!("{}: {}", b.name, b.status);
    }
    if let Some(dir) = &cli.report {
        write_reports(dir, &report)?;
        println!("reports written to {}", dir.display());
    }
    let failures: Vec<_> = report.failures().collect();
    for f in &failures {
        eprintln!(
            "FAIL {} {} {}: {}",
            f.backend,
            f.dtype,
            f.signature,
            f.outcome.detail()
        );
    }
    if report.executed() == 0 {
        eprintln!("error: zero cases were executed; the matrix proves nothing");
    }
    Ok(!report.failed())
}

/// Returns false only when Metal is required and did not open: a failed product is evidence
/// for the matrix's run, not a reason to skip it.
fn probe_metal(cli: &Cli) -> Result<bool> {
    let probe = probe::run();
    let markdown = probe.markdown();
    print!("{markdown}");
    if let Some(dir) = &cli.report {
        write_file(
            dir,
            "metal-probe.json",
            serde_json::to_string_pretty(&probe)? + "\n",
        )?;
        write_file(dir, "metal-probe.md", markdown)?;
        println!("probe written to {}", dir.display());
    }
    if !probe.opened && cli.require.contains(&Kind::Metal) {
        eprintln!(
            "error: --require metal: {} is {}",
            probe.backend, probe.status
        );
        return Ok(false);
    }
    Ok(true)
}

fn run_matrix(cli: &Cli) -> Result<Report> {
    let opts = Options {
        backends: cli.backend.clone(),
        require: cli.require.clone(),
        dtypes: cli.dtype.clone(),
        ops: cli.op.clone(),
        inject_unsupported: cli.inject_unsupported,
        end_to_end: !cli.no_e2e,
        fuzz: cli.fuzz,
        progress: true,
    };
    let backends = run::select_backends(&opts)?;
    let goldens = Source::from_dir(cli.golden_dir.as_deref());
    let (_models_dir, models) = embedded::models()?;
    let inputs = Inputs {
        cases: goldens.cases(&[]).context("loading the goldens")?,
        e2e: goldens.e2e().context("loading the end-to-end goldens")?,
        models: models
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect(),
        xfail: xfail::lists(cli.xfail_dir.as_deref())?,
    };
    let known = |subject: &Subject| match subject {
        Subject::EndToEnd => true,
        Subject::Op(op) => inputs.cases.iter().any(|c| c.meta.op.kind() == *op),
    };
    if let Some(unknown) = cli.op.iter().find(|op| !known(op)) {
        bail!("--op {unknown} is not an op of the inventory");
    }
    Ok(run::run(&opts, &inputs, &backends)?)
}

/// A dtype the goldens were traced in.
fn traced_dtype(s: &str) -> std::result::Result<DType, String> {
    let traced = || {
        let names: Vec<&str> = inference::ops::DTYPES.iter().map(|d| d.as_str()).collect();
        format!("`{s}` is not traced; use {}", names.join(", "))
    };
    let dtype: DType = s.parse().map_err(|_| traced())?;
    if inference::ops::DTYPES.contains(&dtype) {
        Ok(dtype)
    } else {
        Err(traced())
    }
}

fn merge(paths: &[PathBuf]) -> Result<Report> {
    let mut reports = Vec::new();
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an op-matrix report", path.display()))?;
        reports.push(report);
    }
    Ok(Report::merge(reports))
}

fn write_reports(dir: &Path, report: &Report) -> Result<()> {
    write_file(
        dir,
        "report.json",
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    write_file(dir, "ops.md", render::markdown::render(report))?;
    write_file(
        dir,
        "junit.xml",
        render::junit::render(report).map_err(anyhow::Error::msg)?,
    )?;
    Ok(())
}

fn write_file(dir: &Path, name: &str, text: String) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
