//! One op-matrix run: every selected case on every selected backend, plus end to end.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use inference::ops::OpKind;

use crate::backend::{Backend, Kind};
use crate::e2e;
use crate::error::{Error, Result};
use crate::fuzz;
use crate::golden::StoredCase;
use crate::metal;
use crate::outcome::Outcome;
use crate::replay::replay;
use crate::report::{BackendInfo, CaseResult, Report};
use crate::xfail;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Backends to run; empty means all.
    pub backends: Vec<Kind>,
    /// Backends that must be present.
    pub require: Vec<Kind>,
    /// Dtypes to run (`f32`, `bf16`, `f16`); empty means all.
    pub dtypes: Vec<String>,
    /// Op names to run; empty means all.
    pub ops: Vec<String>,
    pub inject_unsupported: Option<String>,
    pub end_to_end: bool,
    /// Random cases per op beyond the trace (see [`crate::fuzz`]); 0 for none.
    pub fuzz: usize,
    pub progress: bool,
}

/// What a run replays: the stored cases, the e2e goldens and the checkpoints they came from,
/// and the expected-failure lists by name (see [`xfail::LISTS`]).
pub struct Inputs {
    pub cases: Vec<StoredCase>,
    pub e2e: HashMap<String, Tensor>,
    pub models: Vec<(String, PathBuf)>,
    pub xfail: HashMap<String, xfail::List>,
}

/// Opens the selected backends, failing on a filter that selects nothing compiled or on a
/// required backend that is not present.
pub fn select_backends(opts: &Options) -> Result<Vec<Backend>> {
    let wanted: Vec<Kind> = if opts.backends.is_empty() {
        Kind::ALL.to_vec()
    } else {
        opts.backends.clone()
    };
    if !wanted.iter().any(|k| k.compiled()) {
        let names: Vec<&str> = wanted.iter().map(|k| k.name()).collect();
        return Err(Error::Usage(format!(
            "--backend {} selects no backend compiled into this build; rebuild with `--features {}`",
            names.join(","),
            names.join(",")
        )));
    }
    let backends: Vec<Backend> = wanted.into_iter().flat_map(Backend::open_all).collect();
    for kind in &opts.require {
        let status = backends
            .iter()
            .find(|b| b.kind == *kind)
            .map(|b| b.status())
            .unwrap_or_else(|| "not selected by --backend".into());
        if status != "present" {
            return Err(Error::Usage(format!(
                "--require {kind}: {kind} is {status}"
            )));
        }
    }
    Ok(backends)
}

fn selected(opts: &Options, op: &str, dtype: &str) -> bool {
    (opts.ops.is_empty() || opts.ops.iter().any(|o| o == op))
        && (opts.dtypes.is_empty() || opts.dtypes.iter().any(|d| d == dtype))
}

pub fn run(opts: &Options, inputs: &Inputs, backends: &[Backend]) -> Result<Report> {
    let cases: Vec<&StoredCase> = inputs
        .cases
        .iter()
        .filter(|c| selected(opts, c.meta.op.name(), &c.meta.dtype))
        .collect();
    let dtypes: Vec<DType> = inference::ops::DTYPES
        .into_iter()
        .filter(|d| opts.end_to_end && selected(opts, "e2e", d.as_str()))
        .collect();
    let fuzz_cases: Vec<fuzz::FuzzCase> = OpKind::ALL
        .into_iter()
        .filter(|op| opts.ops.is_empty() || opts.ops.iter().any(|o| o == op.name()))
        .flat_map(|op| fuzz::cases(op, opts.fuzz, 1))
        .filter(|c| selected(opts, c.op.name(), c.inputs[0].dtype().as_str()))
        .collect();
    let present = backends.iter().filter(|b| b.device().is_some()).count() as u64;
    let total =
        present * (cases.len() + fuzz_cases.len() + dtypes.len() * inputs.models.len()) as u64;
    let bar = if opts.progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:12} [{bar:40}] {pos}/{len} cases {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );

    let mut report = Report {
        candle_version: crate::CANDLE_VERSION.to_string(),
        ..Report::default()
    };
    for backend in backends {
        report.backends.push(BackendInfo {
            name: backend.name.clone(),
            status: backend.status(),
            device: describe(backend),
        });
        let list = xfail::List::join(
            backend
                .xfail_lists()
                .iter()
                .filter_map(|name| inputs.xfail.get(name)),
        );
        bar.set_message(backend.name.clone());
        for case in &cases {
            let outcome = match backend.device() {
                None => Outcome::Skipped {
                    reason: backend.skip_reason().unwrap_or_default(),
                },
                Some(device) => {
                    let raw = replay(
                        case,
                        device,
                        backend.kind.name(),
                        opts.inject_unsupported.as_deref(),
                    );
                    bar.inc(1);
                    list.apply(case.meta.op.name(), &case.meta.dtype, raw)
                }
            };
            let phases: Vec<String> = case.meta.phases.iter().map(|p| p.to_string()).collect();
            report.cases.push(CaseResult {
                op: case.meta.op.name().to_string(),
                signature: case.meta.signature.clone(),
                dtype: case.meta.dtype.clone(),
                backend: backend.name.clone(),
                phase: phases.join(","),
                outcome,
            });
        }
        for case in &fuzz_cases {
            let dtype = case.inputs[0].dtype().as_str();
            let outcome = match backend.device() {
                None => Outcome::Skipped {
                    reason: backend.skip_reason().unwrap_or_default(),
                },
                Some(device) => {
                    let raw = fuzz::check(case, device);
                    bar.inc(1);
                    list.apply(case.op.name(), dtype, raw)
                }
            };
            report.cases.push(CaseResult {
                op: case.op.name().to_string(),
                signature: case.signature().key(),
                dtype: dtype.to_string(),
                backend: backend.name.clone(),
                phase: "fuzz".into(),
                outcome,
            });
        }
        for &dtype in &dtypes {
            for (name, dir) in &inputs.models {
                let outcome = match backend.device() {
                    None => Outcome::Skipped {
                        reason: backend.skip_reason().unwrap_or_default(),
                    },
                    Some(device) => {
                        let raw = e2e::check(&inputs.e2e, name, dir, device, dtype);
                        bar.inc(1);
                        list.apply("e2e", dtype.as_str(), raw)
                    }
                };
                report.cases.push(CaseResult {
                    op: "e2e".into(),
                    signature: format!("e2e {name}: logits, greedy tokens, long-text log-probs"),
                    dtype: dtype.as_str().to_string(),
                    backend: backend.name.clone(),
                    phase: "e2e".into(),
                    outcome,
                });
            }
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

fn describe(backend: &Backend) -> String {
    match backend.device() {
        Some(d) => format!(
            "{}{} ({} {})",
            metal::facts(d).map_or(String::new(), |f| format!("{}, ", f.name)),
            inference::device::describe(d),
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        None => "-".into(),
    }
}
