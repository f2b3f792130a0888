//! End to end: the whole model's logits and greedy tokens on a backend against the CPU
//! golden. Ops that each pass can still compose wrongly (a layout one op hands the next, a
//! cache write), and this catches it.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use inference::checkpoint::Checkpoint;
use inference::generation;
use inference::model::Logits;

use crate::compare::compare;
use crate::error::{Error, Result};
use crate::inventory::prompt_ids;
use crate::outcome::Outcome;
use crate::replay::{panic_message, to_f64};
use crate::tolerance;

pub const FILE: &str = "e2e.safetensors";
pub const GREEDY_TOKENS: usize = 8;

/// Logits of every prompt position (f32, on the CPU) and the greedy continuation.
pub fn run_model(dir: &Path, device: &Device, dtype: DType) -> Result<(Tensor, Vec<u32>)> {
    let checkpoint = Checkpoint::open(dir)?;
    let ids = prompt_ids(&checkpoint)?;
    let model = checkpoint.load_model(device, dtype)?;
    let logits = model.forward(&ids, &mut model.new_cache(), Logits::All)?;
    let greedy = generation::greedy(&model, &ids, GREEDY_TOKENS, &[])?.tokens;
    Ok((logits.to_device(&Device::Cpu)?, greedy))
}

fn key(model: &str, dtype: DType, what: &str) -> String {
    format!("{model}.{}.{what}", dtype.as_str())
}

/// The e2e goldens of every model and dtype, computed on the CPU.
pub fn goldens(models: &[(&str, &Path)], dtypes: &[DType]) -> Result<HashMap<String, Tensor>> {
    let mut map = HashMap::new();
    for &(name, dir) in models {
        for &dtype in dtypes {
            let (logits, greedy) = run_model(dir, &Device::Cpu, dtype)?;
            let n = greedy.len();
            map.insert(key(name, dtype, "logits"), logits);
            map.insert(
                key(name, dtype, "greedy"),
                Tensor::from_vec(greedy, n, &Device::Cpu)?,
            );
        }
    }
    Ok(map)
}

/// Compares one model in one dtype on `device` with its golden.
pub fn check(
    goldens: &HashMap<String, Tensor>,
    name: &str,
    dir: &Path,
    device: &Device,
    dtype: DType,
) -> Outcome {
    let golden = |what: &str| {
        goldens
            .get(&key(name, dtype, what))
            .ok_or_else(|| Error::Usage(format!("no e2e golden {}", key(name, dtype, what))))
    };
    let run = || -> Result<Outcome> {
        let (want_logits, want_greedy) = (golden("logits")?, golden("greedy")?.to_vec1::<u32>()?);
        let (logits, greedy) = match run_model(dir, device, dtype) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Outcome::Unsupported {
                    error: e.to_string(),
                })
            }
        };
        let outcome = compare(
            &to_f64(&logits)?,
            &to_f64(want_logits)?,
            &tolerance::for_logits(dtype),
        );
        if let Some(step) = greedy.iter().zip(&want_greedy).position(|(a, b)| a != b) {
            let errors = match &outcome {
                Outcome::Pass { errors } | Outcome::Mismatch { errors, .. } => *errors,
                _ => Default::default(),
            };
            return Ok(Outcome::Mismatch {
                errors,
                reason: format!(
                    "greedy tokens differ at step {step}: {greedy:?} vs golden {want_greedy:?}"
                ),
            });
        }
        Ok(outcome)
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Unsupported {
            error: e.to_string(),
        },
        Err(payload) => Outcome::Panic {
            message: panic_message(payload.as_ref()),
        },
    }
}
