//! End to end: the whole model's logits and greedy tokens on a backend against the CPU
//! golden ([`crate::bless`] writes it). Ops that each pass can still compose wrongly (a layout one op hands the next, a
//! cache write), and this catches it.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use inference::load::checkpoint::Checkpoint;
use inference::model::Logits;
use inference::run::generation;
use inference::run::scoring;

use op_matrix_core::compare::compare;
use op_matrix_core::outcome::Outcome;
use op_matrix_core::replay::{panic_message, to_f64};
use op_matrix_core::tolerance;

use crate::error::{Error, Result};
use crate::inventory::prompt_ids;

pub const GREEDY_TOKENS: usize = 8;

/// A text far longer than the traced prompt (896 tokens with the tiny tokenizer), so that
/// kernels are checked at sizes the op inventory does not store: long softmax rows, long
/// KV caches, positions past the sliding window many times over.
const LONG_TEXT: &str = include_str!("../../golden/reference/long.txt");

/// What the whole model produced on one backend.
pub struct ModelRun {
    /// Logits of every prompt position (f32, on the CPU).
    pub logits: Tensor,
    pub greedy: Vec<u32>,
    /// Log-probabilities of every token of the long text.
    pub long_logprobs: Vec<f32>,
}

pub fn run_model(dir: &Path, device: &Device, dtype: DType) -> Result<ModelRun> {
    let checkpoint = Checkpoint::open(dir)?;
    let ids = prompt_ids(&checkpoint)?;
    let model = checkpoint.load_model(device, dtype)?;
    let logits = model.forward(&ids, &mut model.new_cache(), Logits::All)?;
    let greedy = generation::greedy(&model, &ids, GREEDY_TOKENS, &[])?.tokens;
    let long = checkpoint.tokenizer()?.encode(LONG_TEXT)?;
    let long_logprobs = scoring::score(&model, &long)?
        .logprobs
        .iter()
        .map(|&x| x as f32)
        .collect();
    Ok(ModelRun {
        logits: logits.to_device(&Device::Cpu)?,
        greedy,
        long_logprobs,
    })
}

/// The name of one golden tensor: `tiny-text.bf16.logits`.
pub fn key(model: &str, dtype: DType, what: &str) -> String {
    format!("{model}.{}.{what}", dtype.as_str())
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
        let want_long = golden("long_logprobs")?;
        let ModelRun {
            logits,
            greedy,
            long_logprobs,
        } = match run_model(dir, device, dtype) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Outcome::Unsupported {
                    error: e.to_string(),
                })
            }
        };
        let tol = tolerance::for_logits(dtype);
        let long: Vec<f64> = long_logprobs.iter().map(|&x| x as f64).collect();
        if let Outcome::Mismatch { errors, reason } = compare(&long, &to_f64(want_long)?, &tol) {
            return Ok(Outcome::Mismatch {
                errors,
                reason: format!("long-text log-probs ({} tokens): {reason}", long.len()),
            });
        }
        let outcome = compare(&to_f64(&logits)?, &to_f64(want_logits)?, &tol);
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
