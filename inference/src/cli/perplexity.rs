//! `gemma3 perplexity`: score a text with the model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use inference::scoring;
use serde_json::json;

use super::model_args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to score.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    text: Option<String>,
    /// A UTF-8 file to score.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Print JSON: tokens, token_ids, perplexity, logprobs.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => unreachable!("clap requires --text or --file"),
    };
    let loaded = args.model.load()?;
    let ids = loaded.tokenizer.encode(&text)?;
    let scores = scoring::score(&loaded.model, &ids)?;
    if args.json {
        let doc = json!({
            "tokens": ids.len(),
            "token_ids": ids,
            "perplexity": scores.perplexity,
            "logprobs": scores.logprobs,
        });
        println!("{doc}");
    } else {
        println!(
            "perplexity {:.4} over {} tokens",
            scores.perplexity,
            ids.len()
        );
    }
    Ok(())
}
