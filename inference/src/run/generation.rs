//! Token generation with the KV cache.

use std::time::{Duration, Instant};

use candle_core::Tensor;
use gemma3_interface::generation_report::Stop;

use crate::error::Result;
use crate::model::{Gemma3, KvCache, Logits};
use crate::run::sampling::{Sampler, SamplingParams};
use crate::run::scoring;

/// Index of the largest logit; ties go to the lowest index, as `torch.argmax` does.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(crate::run::sampling::argmax(
        &logits.flatten_all()?.to_vec1::<f32>()?,
    ))
}

/// What the caller of [`generate`] wants after each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop after this token (a stop string was completed, the user interrupted, ...).
    Stop,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    MaxTokens,
    /// A stop token (EOS or `<end_of_turn>`) was generated; it is the last token.
    StopToken,
    /// The context is full: the model has no position left for another token.
    ContextFull,
    /// The caller asked to stop, for example on a stop string.
    Caller,
}

impl StopReason {
    /// How `gemma3 generate --json` reports it: a stop the caller asked for is Ctrl-C's when
    /// `interrupted`, else a stop string's (the two ways the CLI stops a generation).
    pub fn reported(self, interrupted: bool) -> Stop {
        match self {
            StopReason::MaxTokens => Stop::MaxTokens,
            StopReason::StopToken => Stop::StopToken,
            StopReason::ContextFull => Stop::ContextFull,
            StopReason::Caller if interrupted => Stop::Interrupted,
            StopReason::Caller => Stop::StopString,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub timings: Timings,
}

/// Wall time of each phase. Each step ends by reading the chosen token back to the host, so on
/// an accelerator the times include the device's work, not just its queueing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// The prompt's forward pass and the first token: the time to first token.
    pub prefill: Duration,
    /// Every later token, together.
    pub decode: Duration,
    pub decode_steps: usize,
}

/// Greedy continuation of `prompt`: up to `max_tokens` new tokens, stopping after any of `stop`
/// or when the context is full. A prompt that does not fit is an error.
pub fn greedy(
    model: &Gemma3,
    prompt: &[u32],
    max_tokens: usize,
    stop: &[u32],
) -> Result<Generation> {
    let mut sampler = Sampler::new(SamplingParams::default())?;
    let mut cache = model.new_cache();
    generate(
        model,
        &mut cache,
        prompt,
        max_tokens,
        stop,
        &mut sampler,
        |_| Ok(Flow::Continue),
    )
}

/// Continues `prompt` from the state in `cache` (empty for a fresh start; a chat keeps it
/// across turns). Calls `on_token` with each new token as soon as it is chosen. Stops at
/// `max_tokens`, after a token in `stop` (which is kept in the result but not passed to
/// `on_token`), when the context is full, or when `on_token` says so.
pub fn generate(
    model: &Gemma3,
    cache: &mut KvCache,
    prompt: &[u32],
    max_tokens: usize,
    stop: &[u32],
    sampler: &mut Sampler,
    mut on_token: impl FnMut(u32) -> Result<Flow>,
) -> Result<Generation> {
    let context = model.config().max_position_embeddings;
    // The context bounds the tokens however many are asked for.
    let mut tokens = Vec::with_capacity(max_tokens.min(context));
    let mut history = prompt.to_vec();
    let mut timings = Timings::default();
    let start = Instant::now();
    let mut logits = model.forward(prompt, cache, Logits::Last)?;
    // The last token chosen is never fed back: no forward pass is spent on a token whose
    // logits nobody reads, and a chat knows the cache ends just before it.
    let reason = loop {
        if tokens.len() == max_tokens {
            break StopReason::MaxTokens;
        }
        let row = logits.flatten_all()?.to_vec1::<f32>()?;
        scoring::check_finite(&row, history.len())?;
        let next = sampler.sample(&row, &history);
        if tokens.is_empty() {
            timings.prefill = start.elapsed();
        }
        tokens.push(next);
        history.push(next);
        if stop.contains(&next) {
            break StopReason::StopToken;
        }
        if on_token(next)? == Flow::Stop {
            break StopReason::Caller;
        }
        if tokens.len() == max_tokens {
            break StopReason::MaxTokens;
        }
        if cache.position() == context {
            break StopReason::ContextFull;
        }
        logits = model.forward(&[next], cache, Logits::Last)?;
        timings.decode_steps += 1;
    };
    timings.decode = start.elapsed().saturating_sub(timings.prefill);
    Ok(Generation {
        tokens,
        stop: reason,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_snake_case_and_the_callers_stop_is_named_by_its_cause() {
        let name =
            |r: StopReason, interrupted| serde_json::to_value(r.reported(interrupted)).unwrap();
        assert_eq!(name(StopReason::MaxTokens, false), "max_tokens");
        assert_eq!(name(StopReason::StopToken, false), "stop_token");
        assert_eq!(name(StopReason::ContextFull, true), "context_full");
        assert_eq!(name(StopReason::Caller, false), "stop_string");
        assert_eq!(name(StopReason::Caller, true), "interrupted");
    }
}
