//! Replays one stored case on one device and classifies what happens.

use std::panic::{catch_unwind, AssertUnwindSafe};

use candle_core::{DType, Device, Tensor};
use inference::device::Backend;
use inference::ops::OpKind;

use crate::compare::compare;
use crate::error::Result;
use crate::golden::StoredCase;
use crate::layout;
use crate::outcome::Outcome;
use crate::tolerance;

/// Host f64 values of any tensor, on any device.
pub fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

/// Runs `case` on `device`. `inject` names an op whose replay reports unsupported, so that the
/// harness's own failure path can be tested on any machine.
/// `backend` names the device in that message.
pub fn replay(
    case: &StoredCase,
    device: &Device,
    backend: Backend,
    inject: Option<OpKind>,
) -> Outcome {
    let op = &case.meta.op;
    if inject == Some(op.kind()) {
        return Outcome::Unsupported {
            error: format!(
                "no {backend} implementation for {} (injected, to test the harness)",
                op.name()
            ),
        };
    }
    match catch_unwind(AssertUnwindSafe(|| execute(case, device))) {
        Ok(outcome) => outcome,
        Err(payload) => Outcome::Panic {
            message: panic_message(payload.as_ref()),
        },
    }
}

fn execute(case: &StoredCase, device: &Device) -> Outcome {
    let unsupported = |error: String| Outcome::Unsupported { error };
    let inputs = match case
        .inputs
        .iter()
        .map(|(base, strided)| layout::rebuild(base, strided, device))
        .collect::<Result<Vec<_>>>()
    {
        Ok(inputs) => inputs,
        Err(e) => return unsupported(format!("preparing inputs: {e}")),
    };
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let out = match case.meta.op.apply(&refs) {
        Ok(out) => out,
        Err(e) => return unsupported(e.to_string()),
    };
    if out.dims() != case.output.dims() {
        return Outcome::Mismatch {
            errors: Default::default(),
            reason: format!(
                "output shape {:?}, golden {:?}",
                out.dims(),
                case.output.dims()
            ),
        };
    }
    match (to_f64(&out), to_f64(&case.output)) {
        (Ok(actual), Ok(expected)) => {
            let tol = tolerance::for_op(case.meta.op.kind(), case.output.dtype());
            compare(&actual, &expected, &tol)
        }
        (Err(e), _) => unsupported(format!("reading the output: {e}")),
        (_, Err(e)) => unsupported(format!("reading the golden: {e}")),
    }
}

pub use inference::process::panic_message;
