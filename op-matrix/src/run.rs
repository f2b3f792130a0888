//! One op-matrix run: every selected case on every selected backend, plus end to end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use inference::ops::OpKind;

use crate::backend::{Backend, Kind};
use crate::e2e;
use crate::error::{Error, Result};
use crate::fuzz;
use crate::metal;
use crate::report::{BackendInfo, CaseResult, Report};
use crate::subject::Subject;
use crate::xfail;
use op_matrix_core::golden::StoredCase;
use op_matrix_core::outcome::Outcome;
use op_matrix_core::replay::replay;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Backends to run; empty means all.
    pub backends: Vec<Kind>,
    /// Backends that must be present.
    pub require: Vec<Kind>,
    /// Dtypes to run; empty means all.
    pub dtypes: Vec<DType>,
    /// What to check; empty means everything.
    pub ops: Vec<Subject>,
    /// An op whose replay reports unsupported, to test the harness's failure path.
    pub inject_unsupported: Option<OpKind>,
    pub end_to_end: bool,
    /// Random cases per op beyond the trace (see [`crate::fuzz`]); 0 for none.
    pub fuzz: usize,
    pub progress: bool,
}

/// What a run replays: the stored cases, the e2e goldens and the checkpoints they came from,
/// and the expected-failure lists by name (see [`xfail::LISTS`]).
pub struct Inputs {
    pub cases: Vec<StoredCase>,
    pub e2e: Goldens,
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

fn selected(opts: &Options, subject: Subject, dtype: DType) -> bool {
    (opts.ops.is_empty() || opts.ops.contains(&subject))
        && (opts.dtypes.is_empty() || opts.dtypes.contains(&dtype))
}

/// One check of a run: a traced case replayed, a fuzz case against the CPU, or a whole model
/// against its end-to-end goldens. A run loops over them once per backend.
enum Check<'a> {
    Traced(&'a StoredCase),
    Fuzz(&'a fuzz::FuzzCase),
    EndToEnd {
        model: &'a str,
        dir: &'a Path,
        dtype: DType,
    },
}

impl Check<'_> {
    fn subject(&self) -> Subject {
        match self {
            Check::Traced(case) => Subject::Op(case.meta.op.kind()),
            Check::Fuzz(case) => Subject::Op(case.op.kind()),
            Check::EndToEnd { .. } => Subject::EndToEnd,
        }
    }

    fn dtype(&self) -> DType {
        match self {
            Check::Traced(case) => case.meta.dtype,
            Check::Fuzz(case) => case.inputs[0].dtype(),
            Check::EndToEnd { dtype, .. } => *dtype,
        }
    }

    fn signature(&self) -> String {
        match self {
            Check::Traced(case) => case.meta.signature.clone(),
            Check::Fuzz(case) => case.signature().key(),
            Check::EndToEnd { model, .. } => {
                format!("e2e {model}: logits, greedy tokens, long-text log-probs")
            }
        }
    }

    fn phase(&self) -> String {
        match self {
            Check::Traced(case) => {
                let phases: Vec<String> = case.meta.phases.iter().map(|p| p.to_string()).collect();
                phases.join(",")
            }
            Check::Fuzz(_) => "fuzz".into(),
            Check::EndToEnd { .. } => "e2e".into(),
        }
    }

    fn run(
        &self,
        device: &Device,
        backend: Kind,
        opts: &Options,
        e2e_goldens: &Goldens,
    ) -> Outcome {
        match self {
            Check::Traced(case) => replay(case, device, backend, opts.inject_unsupported),
            Check::Fuzz(case) => fuzz::check(case, device),
            Check::EndToEnd { model, dir, dtype } => {
                e2e::check(e2e_goldens, model, dir, device, *dtype)
            }
        }
    }
}

type Goldens = HashMap<String, Tensor>;

pub fn run(opts: &Options, inputs: &Inputs, backends: &[Backend]) -> Result<Report> {
    let fuzz_cases: Vec<fuzz::FuzzCase> = OpKind::ALL
        .into_iter()
        .filter(|&op| opts.ops.is_empty() || opts.ops.contains(&Subject::Op(op)))
        .flat_map(|op| fuzz::cases(op, opts.fuzz, 1))
        .collect();
    let end_to_end = inference::ops::DTYPES
        .into_iter()
        .filter(|_| opts.end_to_end)
        .flat_map(|dtype| {
            inputs
                .models
                .iter()
                .map(move |(model, dir)| Check::EndToEnd { model, dir, dtype })
        });
    let checks: Vec<Check> = inputs
        .cases
        .iter()
        .map(Check::Traced)
        .chain(fuzz_cases.iter().map(Check::Fuzz))
        .chain(end_to_end)
        .filter(|c| selected(opts, c.subject(), c.dtype()))
        .collect();
    let present = backends.iter().filter(|b| b.device().is_some()).count() as u64;
    let bar = if opts.progress {
        ProgressBar::new(present * checks.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:12} [{bar:40}] {pos}/{len} cases {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );

    let mut report = Report {
        candle_version: op_matrix_core::CANDLE_VERSION.to_string(),
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
        for check in &checks {
            let (subject, dtype) = (check.subject(), check.dtype());
            let outcome = match backend.device() {
                None => Outcome::Skipped {
                    reason: backend.skip_reason().unwrap_or_default(),
                },
                Some(device) => {
                    let raw = check.run(device, backend.kind, opts, &inputs.e2e);
                    bar.inc(1);
                    list.apply(subject, dtype, raw)
                }
            };
            report.cases.push(CaseResult {
                op: subject.name().to_string(),
                signature: check.signature(),
                dtype: dtype.as_str().to_string(),
                backend: backend.name.clone(),
                phase: check.phase(),
                outcome,
            });
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
