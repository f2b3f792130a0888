//! Token generation with the KV cache.

use candle_core::Tensor;

use crate::error::Result;
use crate::model::{Gemma3, KvCache, Logits};

/// Index of the largest logit; ties go to the lowest index, as `torch.argmax` does.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    let row = logits.flatten_all()?.to_vec1::<f32>()?;
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    Ok(best as u32)
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    MaxTokens,
    /// A stop token (EOS or `<end_of_turn>`) was generated; it is the last token.
    StopToken,
    /// The context is full: the model has no position left for another token.
    ContextFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
}

/// Greedy continuation of `prompt`: up to `max_tokens` new tokens, stopping after any of `stop`
/// or when the context is full. A prompt that does not fit is an error.
pub fn greedy(
    model: &Gemma3,
    prompt: &[u32],
    max_tokens: usize,
    stop: &[u32],
) -> Result<Generation> {
    let mut cache: KvCache = model.new_cache();
    let mut tokens = Vec::with_capacity(max_tokens);
    let context = model.config().max_position_embeddings;
    let mut logits = model.forward(prompt, &mut cache, Logits::Last)?;
    let reason = loop {
        if tokens.len() == max_tokens {
            break StopReason::MaxTokens;
        }
        let next = argmax(&logits)?;
        tokens.push(next);
        if stop.contains(&next) {
            break StopReason::StopToken;
        }
        if tokens.len() < max_tokens && cache.position() == context {
            break StopReason::ContextFull;
        }
        logits = model.forward(&[next], &mut cache, Logits::Last)?;
    };
    Ok(Generation {
        tokens,
        stop: reason,
    })
}
