//! Log-probabilities and perplexity of a token sequence.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::{Gemma3, Logits};

#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Natural-log probability of each token after the first, given the ones before it.
    pub logprobs: Vec<f64>,
    pub perplexity: f64,
}

/// Scores `tokens` in one forward pass.
pub fn score(model: &Gemma3, tokens: &[u32]) -> Result<Scores> {
    if tokens.len() < 2 {
        return Err(Error::Invalid(
            "scoring needs at least two tokens (one to condition on, one to predict)".into(),
        ));
    }
    let mut cache = model.new_cache();
    let logits = model.forward(tokens, &mut cache, Logits::All)?;
    let logprobs = logprobs_of_next(&logits, tokens)?;
    Ok(Scores {
        perplexity: perplexity(&logprobs),
        logprobs,
    })
}

/// Scores long token sequences in windows of at most `window` tokens, moving by `stride`, as
/// transformers' strided perplexity does: each window sees up to `window - stride` tokens of
/// context before the ones it scores, and every token after the first is scored exactly once.
/// `on_window` is called with (tokens scored so far, total) for progress reporting.
/// Whether windows of `window` tokens moving by `stride` score every token: they must overlap
/// by a token, as the first token of a window is only ever predicted by the window before it.
pub fn check_windows(window: usize, stride: usize) -> Result<()> {
    if window < 2 || stride == 0 || stride >= window {
        return Err(Error::Invalid(format!(
            "--window must be at least 2 and --stride between 1 and window - 1 (got window {window}, stride {stride})"
        )));
    }
    Ok(())
}

pub fn score_windowed(
    model: &Gemma3,
    tokens: &[u32],
    window: usize,
    stride: usize,
    mut on_window: impl FnMut(usize, usize),
) -> Result<Scores> {
    if tokens.len() < 2 {
        return Err(Error::Invalid(
            "scoring needs at least two tokens (one to condition on, one to predict)".into(),
        ));
    }
    check_windows(window, stride)?;
    let mut logprobs = Vec::with_capacity(tokens.len() - 1);
    let mut scored_until = 1; // the first token is never predicted
    let mut begin = 0;
    loop {
        let end = (begin + window).min(tokens.len());
        let chunk = &tokens[begin..end];
        let logits = model.forward(chunk, &mut model.new_cache(), Logits::All)?;
        let all = logprobs_of_next(&logits, chunk)?;
        // all[k] predicts chunk[k + 1], i.e. tokens[begin + k + 1].
        logprobs.extend_from_slice(&all[scored_until - begin - 1..]);
        scored_until = end;
        on_window(scored_until - 1, tokens.len() - 1);
        if end == tokens.len() {
            break;
        }
        begin += stride;
    }
    Ok(Scores {
        perplexity: perplexity(&logprobs),
        logprobs,
    })
}

/// For row i of `logits` (positions, vocab), the log-probability of `tokens[i + 1]`, in f64;
/// an error at the first row that holds a value that is not a number, which would make every
/// score after it NaN.
pub fn logprobs_of_next(logits: &Tensor, tokens: &[u32]) -> Result<Vec<f64>> {
    let rows = logits.to_vec2::<f32>()?;
    rows.iter()
        .zip(&tokens[1..])
        .enumerate()
        .map(|(i, (row, &next))| {
            check_finite(row, i + 1)?;
            Ok(log_softmax_at(row, next as usize))
        })
        .collect()
}

/// An error if the logits `row`, which predict token `position`, hold a non-finite value.
pub fn check_finite(row: &[f32], position: usize) -> Result<()> {
    match row.iter().find(|x| !x.is_finite()) {
        Some(&value) => Err(Error::NonFinite { position, value }),
        None => Ok(()),
    }
}

pub fn log_softmax_at(row: &[f32], index: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row[index] as f64 - max - sum.ln()
}

pub fn perplexity(logprobs: &[f64]) -> f64 {
    let mean = logprobs.iter().sum::<f64>() / logprobs.len() as f64;
    (-mean).exp()
}
