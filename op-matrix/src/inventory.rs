//! The op inventory: every distinct op signature the model launches, traced from the model
//! code itself on the CPU, with its real inputs and output.
//!
//! Each traced run loads a tiny checkpoint and exercises the four phases of real use: loading
//! (weight casts, norm gains), a generation prefill longer than the sliding window, decode
//! steps with the KV cache, and a scoring pass that returns every position's logits. Prefill
//! and decode launch different kernels (gemm vs gemv, masked vs unmasked softmax), so both
//! are needed.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use inference::load::checkpoint::Checkpoint;
use inference::load::gguf;
use inference::model::Logits;
use inference::ops::trace::{self, Call};
use inference::run::generation::argmax;
use op_matrix_core::golden::Phase;

use crate::error::{Error, Result};
use crate::signature::Signature;

/// How many decode steps a trace runs after the prefill.
pub const DECODE_STEPS: usize = 2;

/// One distinct op case, with the real tensors of its first occurrence.
#[derive(Debug, Clone)]
pub struct Case {
    pub signature: Signature,
    /// The model dtype of the run it came from.
    pub dtype: DType,
    pub phases: BTreeSet<Phase>,
    pub models: BTreeSet<String>,
    pub inputs: Vec<Tensor>,
    pub output: Tensor,
}

impl Case {
    pub fn key(&self) -> String {
        self.signature.key()
    }
}

/// The prompt every trace runs; longer than both tiny models' sliding windows.
pub fn prompt_ids(checkpoint: &Checkpoint) -> Result<Vec<u32>> {
    let text = "The clockmaker opens his shop, and the students ask why the pendulum swings.";
    Ok(checkpoint.tokenizer()?.encode(text)?)
}

/// Traces one checkpoint in one dtype: the op calls of each phase, in order.
pub fn trace_model(dir: &Path, dtype: DType) -> Result<Vec<(Phase, Call)>> {
    let checkpoint = Checkpoint::open(dir)?;
    let ids = prompt_ids(&checkpoint)?;
    let mut calls = Vec::new();
    let mut tag =
        |phase: Phase, t: trace::Trace| calls.extend(t.calls.into_iter().map(|c| (phase, c)));

    let (model, t) = trace::capture(|| checkpoint.load_model(&Device::Cpu, dtype));
    let model = model?;
    tag(Phase::Load, t);

    let mut cache = model.new_cache();
    let (logits, t) = trace::capture(|| model.forward(&ids, &mut cache, Logits::Last));
    let mut next = argmax(&logits?)?;
    tag(Phase::Prefill, t);
    for _ in 0..DECODE_STEPS {
        let (logits, t) = trace::capture(|| model.forward(&[next], &mut cache, Logits::Last));
        next = argmax(&logits?)?;
        tag(Phase::Decode, t);
    }

    let (logits, t) = trace::capture(|| model.forward(&ids, &mut model.new_cache(), Logits::All));
    logits?;
    tag(Phase::Score, t);
    Ok(calls)
}

/// Writes a copy of the checkpoint in `dir` with its weights stored in `dtype`, as Hub
/// checkpoints are (bf16). Loading it in another dtype traces the casts users' loads run.
pub fn with_weights_in(dir: &Path, dtype: DType, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for name in ["config.json", "tokenizer.json"] {
        std::fs::copy(dir.join(name), dest.join(name)).map_err(|e| Error::io(dir.join(name), e))?;
    }
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let cast = weights
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(dtype)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    candle_core::safetensors::save(&cast, dest.join("model.safetensors"))?;
    Ok(())
}

/// Writes the checkpoint in `dir` as one GGUF file in `dest`, its matrices in `matrices`: a
/// folder that loads as a quantized checkpoint, as a llama.cpp user's would.
pub fn as_gguf(dir: &Path, matrices: GgmlDType, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let checkpoint = Checkpoint::open(dir)?;
    gguf::write_checkpoint(&checkpoint, &dest.join("model.gguf"), matrices)?;
    Ok(())
}

/// Distinct cases of every `(model, dir)` in every dtype, in order of first appearance.
pub fn inventory(models: &[(&str, &Path)], dtypes: &[DType]) -> Result<Vec<Case>> {
    let mut cases: Vec<Case> = Vec::new();
    for &dtype in dtypes {
        let mut index: HashMap<String, usize> = HashMap::new();
        for &(name, dir) in models {
            for (phase, call) in trace_model(dir, dtype)? {
                let signature = Signature::of(&call);
                match index.get(&signature.key()) {
                    Some(&i) => {
                        cases[i].phases.insert(phase);
                        cases[i].models.insert(name.to_string());
                    }
                    None => {
                        index.insert(signature.key(), cases.len());
                        cases.push(Case {
                            signature,
                            dtype,
                            phases: [phase].into(),
                            models: [name.to_string()].into(),
                            inputs: call.inputs,
                            output: call.output,
                        })
                    }
                }
            }
        }
    }
    Ok(cases)
}
