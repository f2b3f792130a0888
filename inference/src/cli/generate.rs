//! `gemma3 generate`: continue a prompt.

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
    /// Print JSON with the generated token ids.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.temperature != 0.0 {
        bail!("only greedy decoding (--temperature 0) is available so far");
    }
    let loaded = args.model.load()?;
    let prompt = loaded.tokenizer.encode(&args.prompt)?;
    let stop = &loaded.model.config().eos_token_ids;
    let generation = generation::greedy(&loaded.model, &prompt, args.max_tokens, stop)?;
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
            json!({"prompt_tokens": prompt.len(), "token_ids": ids, "text": text})
        );
    } else {
        println!("{text}");
    }
    Ok(())
}
