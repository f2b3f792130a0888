//! The document `gemma3 generate --json` prints: one type for the CLI that writes it and the
//! tools that read it (the bench), so that a key renamed on one side does not compile on the
//! other.

use serde::{Deserialize, Serialize};

/// A generation's tokens, text, why it ended, and its timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationReport {
    pub prompt_tokens: usize,
    /// The generated tokens, the prompt's left out.
    pub token_ids: Vec<u32>,
    pub text: String,
    pub stop: Stop,
    /// `stop` in the words of OpenAI's `finish_reason`, which client code already reads.
    pub finish_reason: FinishReason,
    pub stats: GenerationStats,
}

/// Why a `gemma3 generate` ended, as `snake_case` in the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// `--max-tokens` new tokens were generated.
    MaxTokens,
    /// A stop token (EOS or `<end_of_turn>`) was generated; it is the last token.
    StopToken,
    /// The context is full: the model has no position left for another token.
    ContextFull,
    /// The output contains a `--stop` string.
    StopString,
    /// Ctrl-C.
    Interrupted,
}

impl Stop {
    pub fn finish_reason(self) -> FinishReason {
        match self {
            Stop::StopToken | Stop::StopString => FinishReason::Stop,
            Stop::MaxTokens | Stop::ContextFull => FinishReason::Length,
            Stop::Interrupted => FinishReason::Interrupted,
        }
    }
}

/// OpenAI's `finish_reason` words: `stop` (a stop token or string), `length` (`--max-tokens`
/// or the context), and `interrupted` (Ctrl-C), which OpenAI has no word for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    Interrupted,
}

/// Sizes, rates and times of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Loading the checkpoint, the preflight included.
    pub load_s: f64,
    /// Time to first token: the prompt's forward pass and the first sampled token.
    pub ttft_ms: f64,
    pub prefill_tok_s: f64,
    /// Every token after the first, over the time they took.
    pub decode_tok_s: f64,
    /// How long the preflight took; `None` when it was skipped.
    pub preflight_ms: Option<f64>,
    /// The CPU kernel path the ops ran on (`avx512`, `avx2`, `neon`, `portable`).
    pub cpu_kernels: String,
    /// The dtype the model ran in (`f32`, `bf16`, `f16`): `--dtype`, or what `auto` chose.
    pub dtype: String,
    /// The ops that ran on the host instead of the device (`--fallback`), when any did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackStats>,
}

/// What the ops run on the host cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FallbackStats {
    pub ops: Vec<String>,
    pub calls: usize,
    pub ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_has_openais_finish_reason() {
        let words: Vec<_> = [
            Stop::MaxTokens,
            Stop::StopToken,
            Stop::ContextFull,
            Stop::StopString,
            Stop::Interrupted,
        ]
        .map(|s| serde_json::to_value(s.finish_reason()).unwrap())
        .into();
        assert_eq!(
            words,
            ["length", "stop", "length", "stop", "interrupted"].map(serde_json::Value::from)
        );
    }

    #[test]
    fn the_document_round_trips_and_omits_an_absent_fallback() {
        let report = GenerationReport {
            prompt_tokens: 3,
            token_ids: vec![7, 8],
            text: " a b".into(),
            stop: Stop::MaxTokens,
            finish_reason: FinishReason::Length,
            stats: GenerationStats {
                prompt_tokens: 3,
                generated_tokens: 2,
                load_s: 0.25,
                ttft_ms: 12.5,
                prefill_tok_s: 240.0,
                decode_tok_s: 80.0,
                preflight_ms: None,
                cpu_kernels: "avx2".into(),
                dtype: "bf16".into(),
                fallback: None,
            },
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"preflight_ms\":null"), "{json}");
        assert!(!json.contains("fallback"), "{json}");
        assert_eq!(
            serde_json::from_str::<GenerationReport>(&json).unwrap(),
            report
        );
    }
}
