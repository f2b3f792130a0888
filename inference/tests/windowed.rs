//! Strided perplexity over long texts: every token after the first is scored once, a window as
//! long as the text equals one pass, and shorter windows lose only context.

mod common;

use candle_core::DType;
use common::*;
use inference::run::scoring::{score, score_windowed};

#[test]
fn a_window_covering_the_text_equals_one_pass() {
    let model = load("tiny-text", DType::F32);
    let ids = ids(&reference("tiny-text")["prompt"]["token_ids"]);
    let whole = score(&model, &ids).unwrap();
    let windowed = score_windowed(&model, &ids, ids.len(), 1, |_, _| {}).unwrap();
    assert_eq!(windowed.logprobs.len(), ids.len() - 1);
    let diff = whole
        .logprobs
        .iter()
        .zip(&windowed.logprobs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-9, "{diff}");
}

#[test]
fn strided_windows_score_each_token_once_with_full_context_where_it_fits() {
    let model = load("tiny-text", DType::F32);
    let ids = ids(&reference("tiny-text")["long"]["token_ids"]);
    let whole = score(&model, &ids).unwrap();
    let mut progress = Vec::new();
    let windowed = score_windowed(&model, &ids, 300, 200, |done, total| {
        progress.push((done, total))
    })
    .unwrap();
    assert_eq!(windowed.logprobs.len(), ids.len() - 1);
    assert_eq!(progress.last(), Some(&(ids.len() - 1, ids.len() - 1)));
    // The first window's tokens have the same context as in one pass.
    for i in 0..299 {
        assert!(
            (windowed.logprobs[i] - whole.logprobs[i]).abs() < 1e-4,
            "token {i}"
        );
    }
    // Later tokens lose context past the window; the sliding layers never see it anyway, so
    // the perplexity stays close.
    let rel = (windowed.perplexity - whole.perplexity).abs() / whole.perplexity;
    assert!(
        rel < 0.05,
        "{} vs {}",
        windowed.perplexity,
        whole.perplexity
    );
}

#[test]
fn windows_that_do_not_overlap_are_rejected() {
    let model = load("tiny-text", DType::F32);
    let ids: Vec<u32> = (10..60).collect();
    let err = score_windowed(&model, &ids, 16, 16, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("--stride between 1 and window - 1"), "{err}");
}
