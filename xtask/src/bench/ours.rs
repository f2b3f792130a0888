//! Our engine: the release `gemma3 generate --json` on a bench checkpoint, with the prompt
//! written as the word-level tokenizer's `t<id>` words so it is exactly the bench's ids.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::checkpoints::{prompt_text, Checkpoint};
use super::process::{self, log_path};
use super::report::Metrics;
use super::Env;

pub struct Generated {
    pub metrics: Metrics,
    pub token_ids: Vec<u32>,
}

/// One `gemma3 generate` of `new_tokens` greedy tokens after `ids`.
pub fn generate(
    bin: &Path,
    ckpt: &Checkpoint,
    ids: &[u32],
    new_tokens: usize,
    env: &Env,
    label: &str,
) -> Result<Generated> {
    let mut cmd = Command::new(bin);
    cmd.arg("generate")
        .arg("--model-dir")
        .arg(&ckpt.dir)
        .args(["--raw", "--prompt", &prompt_text(ids)])
        .args(["--max-tokens", &new_tokens.to_string()])
        .args(["--ignore-eos", "--json", "--device", "cpu"])
        .args(["--dtype", ckpt.dtype.name()])
        // The preflight's latency is in its info-level log line.
        .env("GEMMA3_LOG", "info")
        .env("NO_COLOR", "1")
        .env("RAYON_NUM_THREADS", env.threads.to_string());
    let name = format!("gemma3-{}-{}-{label}", ckpt.model.name(), ckpt.dtype.name());
    let done = process::run(
        &mut cmd,
        &format!("gemma3 generate ({name})"),
        &log_path(&env.logs, &name),
        "check that the release build of gemma3 runs (`cargo build --release -p gemma3-cli`)",
    )?;
    let doc = done
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .context("gemma3 generate --json printed no JSON")?;
    let stats = &doc["stats"];
    let f = |k: &str| {
        stats[k]
            .as_f64()
            .with_context(|| format!("gemma3's stats have no number {k}: {stats}"))
    };
    let prompt_tokens = f("prompt_tokens")? as usize;
    if prompt_tokens != ids.len() {
        bail!(
            "gemma3 saw {prompt_tokens} prompt tokens, the bench sent {}: the checkpoint's tokenizer is not the bench's word-level one",
            ids.len()
        );
    }
    let token_ids = doc["token_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect()
        })
        .unwrap_or_default();
    Ok(Generated {
        metrics: Metrics {
            prompt_tokens,
            generated_tokens: f("generated_tokens")? as usize,
            prefill_tok_s: f("prefill_tok_s")?,
            decode_tok_s: f("decode_tok_s")?,
            ttft_ms: Some(f("ttft_ms")?),
            load_s: Some(f("load_s")?),
            peak_rss_bytes: Some(done.peak_rss_bytes),
            preflight_ms: preflight_ms(&done.stderr),
            others_cores: done.others_cores,
        },
        token_ids,
    })
}

/// The preflight's latency from the log line `preflight on cpu (BF16): 470 ops in 3.2 ms`.
pub fn preflight_ms(stderr: &str) -> Option<f64> {
    stderr
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains("preflight on"))
        .find_map(|l| {
            let (_, rest) = l.rsplit_once(" in ")?;
            rest.trim().strip_suffix("ms")?.trim().parse().ok()
        })
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preflight_latency_is_read_from_the_log() {
        let log = "\u{1b}[2m2026-11-26T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m gemma3_cli::model_args: preflight on cpu (BF16): 470 ops in 3.25 ms\nload 0.20 s";
        assert_eq!(preflight_ms(log), Some(3.25));
        assert_eq!(preflight_ms("load 0.20 s, prompt 5 tokens"), None);
    }
}
