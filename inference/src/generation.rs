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

/// Greedy continuation of `prompt`: up to `max_tokens` new tokens, stopping after any of `stop`.
pub fn greedy(model: &Gemma3, prompt: &[u32], max_tokens: usize, stop: &[u32]) -> Result<Vec<u32>> {
    let mut cache: KvCache = model.new_cache();
    let mut out = Vec::with_capacity(max_tokens);
    if max_tokens == 0 {
        return Ok(out);
    }
    let mut next = argmax(&model.forward(prompt, &mut cache, Logits::Last)?)?;
    loop {
        out.push(next);
        if out.len() == max_tokens || stop.contains(&next) {
            return Ok(out);
        }
        next = argmax(&model.forward(&[next], &mut cache, Logits::Last)?)?;
    }
}
