//! `cargo xtask golden`: a fresh trace judged against the committed goldens, on every CPU
//! kernel path this machine can run. Writing them is [`crate::bless`]'s.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use inference::device::Backend;
use inference::ops::cpu::kernel_path::{self, KernelPath};
use inference::ops::DTYPES;
use op_matrix_core::compare::compare;
use op_matrix_core::golden::{Source, StoredCase, E2E};
use op_matrix_core::outcome::Outcome;
use op_matrix_core::replay::{replay, to_f64};
use op_matrix_core::tolerance;

use crate::bless::{e2e_goldens, trace_all, Sources};
use crate::error::Result;

/// Differences between a fresh trace and the goldens in `dir`: the cases the trace records
/// (which no kernel path changes, so traced once), then the values on every CPU kernel path
/// this machine can run, each prefixed by its path: a machine of another kind takes another
/// path, and the goldens must hold there too. The active path is restored afterwards.
pub fn check_every_path(dir: &Path, sources: &Sources) -> Result<Vec<String>> {
    let stored = Stored::read(dir)?;
    let mut diffs = traced_keys_diff(&stored, sources)?;
    let models = sources.models();
    let before = kernel_path::active();
    for path in KernelPath::supported() {
        kernel_path::force(path)?;
        let found = values_diff(&stored, &models);
        kernel_path::force(before)?;
        diffs.extend(found?.into_iter().map(|d| format!("{path}: {d}")));
    }
    Ok(diffs)
}

/// The committed goldens, read once for every path's check.
struct Stored {
    cases: Vec<StoredCase>,
    e2e: HashMap<String, Tensor>,
}

impl Stored {
    fn read(dir: &Path) -> Result<Self> {
        let source = Source::Dir(dir.to_path_buf());
        let cases = source.cases(&[])?;
        let e2e = source.e2e()?;
        Ok(Self { cases, e2e })
    }
}

fn key(dtype: DType, signature: &str) -> String {
    format!("{} {signature}", dtype.as_str())
}

/// Cases a fresh trace records that the goldens lack, and the reverse.
fn traced_keys_diff(stored: &Stored, sources: &Sources) -> Result<Vec<String>> {
    let fresh = trace_all(sources)?;
    let stored = &stored.cases;
    let fresh_keys: BTreeSet<String> = fresh.iter().map(|c| key(c.dtype, &c.key())).collect();
    let stored_keys: BTreeSet<String> = stored
        .iter()
        .map(|c| key(c.meta.dtype, &c.meta.signature))
        .collect();
    let mut diffs: Vec<String> = Vec::new();
    diffs.extend(
        fresh_keys
            .difference(&stored_keys)
            .map(|k| format!("+ {k} (new in the trace)")),
    );
    diffs.extend(
        stored_keys
            .difference(&fresh_keys)
            .map(|k| format!("- {k} (no longer traced)")),
    );
    Ok(diffs)
}

/// Differences between the stored values and the active CPU kernel path, empty when they
/// agree: every stored case replayed must give its output (at the op's tolerance), and the
/// end-to-end values must hold (at [`tolerance::for_retrace`]).
fn values_diff(stored: &Stored, models: &[(&str, &Path)]) -> Result<Vec<String>> {
    let (stored, stored_e2e) = (&stored.cases, &stored.e2e);
    let mut diffs: Vec<String> = Vec::new();
    // Each stored case replayed on the active path: the op on the golden's own inputs, at the
    // op's tolerance. The fresh trace's intermediate outputs are not compared: their inputs
    // carry every earlier op's rounding on this path, which the end-to-end check below bounds.
    for case in stored {
        let k = key(case.meta.dtype, &case.meta.signature);
        match replay(case, &Device::Cpu, Backend::Cpu, None) {
            Outcome::Mismatch { reason, .. } => diffs.push(format!("~ {k}: {reason}")),
            Outcome::Unsupported { error } => diffs.push(format!("! {k}: {error}")),
            Outcome::Panic { message } => diffs.push(format!("! {k}: panicked: {message}")),
            _ => {}
        }
    }
    for dtype in DTYPES {
        let tol = tolerance::for_retrace(dtype);
        let mut fresh: Vec<(String, Tensor)> = e2e_goldens(models, &[dtype])?.into_iter().collect();
        fresh.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, tensor) in fresh {
            let Some(old) = stored_e2e.get(&name) else {
                diffs.push(format!("+ e2e {name} (missing from {})", E2E));
                continue;
            };
            if let Outcome::Mismatch { reason, .. } =
                compare(&to_f64(&tensor)?, &to_f64(old)?, &tol)
            {
                diffs.push(format!("~ e2e {name}: {reason}"));
            }
        }
    }
    Ok(diffs)
}
