//! `gemma3 generate`: continue a prompt.

use std::time::Instant;

use anyhow::{bail, Result};
use inference::generation::{self, StopReason};
use serde_json::json;

use super::model_args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    prompt: String,
    /// Most new tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Print JSON with the generated token ids and a `stats` object.
    #[arg(long)]
    json: bool,
    /// Keep generating past end-of-sequence tokens (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.temperature != 0.0 {
        bail!("only greedy decoding (--temperature 0) is available so far");
    }
    let started = Instant::now();
    let loaded = args.model.load()?;
    let load_s = started.elapsed().as_secs_f64();
    let prompt = loaded.tokenizer.encode(&args.prompt)?;
    let stop: &[u32] = if args.ignore_eos {
        &[]
    } else {
        &loaded.model.config().eos_token_ids
    };
    let generation = generation::greedy(&loaded.model, &prompt, args.max_tokens, stop)?;
    let t = generation.timings;
    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(f64::MIN_POSITIVE);
    let stats = json!({
        "prompt_tokens": prompt.len(),
        "generated_tokens": generation.tokens.len(),
        "load_s": load_s,
        "ttft_ms": t.prefill.as_secs_f64() * 1e3,
        "prefill_tok_s": rate(prompt.len(), t.prefill),
        "decode_tok_s": rate(t.decode_steps, t.decode),
    });
    eprintln!(
        "load {load_s:.2} s, prompt {} tokens at {:.1} tok/s, generated {} tokens at {:.1} tok/s, first token after {:.0} ms",
        prompt.len(),
        stats["prefill_tok_s"].as_f64().unwrap_or(0.0),
        generation.tokens.len(),
        stats["decode_tok_s"].as_f64().unwrap_or(0.0),
        stats["ttft_ms"].as_f64().unwrap_or(0.0),
    );
    if generation.stop == StopReason::ContextFull {
        eprintln!(
            "note: stopped after {} tokens: the context of {} positions is full",
            generation.tokens.len(),
            loaded.model.config().max_position_embeddings
        );
    }
    let ids = generation.tokens;
    let text = loaded.tokenizer.decode(&ids, true)?;
    if args.json {
        println!(
            "{}",
            json!({"prompt_tokens": prompt.len(), "token_ids": ids, "text": text, "stats": stats})
        );
    } else {
        println!("{text}");
    }
    Ok(())
}
