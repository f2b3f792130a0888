//! `gemma3 perplexity`: score a text with the model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use inference::run::scoring;
use serde_json::json;

use super::model_args::ModelArgs;
use super::output;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to score.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    text: Option<String>,
    /// A UTF-8 file to score.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Print JSON: tokens, token_ids, perplexity, logprobs.
    #[arg(long)]
    json: bool,
    /// Score in windows of this many tokens (for texts longer than the context).
    #[arg(long)]
    window: Option<usize>,
    /// How far each window moves; each window keeps `window - stride` tokens of context.
    /// Default: half the window.
    #[arg(long, requires = "window")]
    stride: Option<usize>,
}

impl Args {
    /// The windowing flags' own consistency, checked before anything loads.
    pub fn check_flags(&self) -> Result<(), String> {
        match self.window {
            Some(window) => {
                scoring::check_windows(window, self.stride(window)).map_err(|e| e.to_string())
            }
            None => Ok(()),
        }
    }

    fn stride(&self, window: usize) -> usize {
        self.stride.unwrap_or((window / 2).max(1))
    }
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
    let context = loaded.model.config().max_position_embeddings;
    let too_long = |tokens: String| {
        anyhow::anyhow!(
            "the text is {tokens} tokens but the model's context holds {context} (max_position_embeddings); \
             score it in windows with --window {context} (and optionally --stride)"
        )
    };
    // Without windows a text must fit the context: a prefix that already does not is enough to
    // say so, without tokenizing a whole book first.
    if args.window.is_none() {
        let probe = prefix(&text, context.saturating_mul(16));
        if probe.len() < text.len() {
            let n = loaded.tokenizer.encode(probe)?.len();
            // One token of slack: the cut may split a word that the whole text keeps whole.
            if n > context + 1 {
                return Err(too_long(format!("more than {}", n - 1)));
            }
        }
    }
    let ids = loaded.tokenizer.encode(&text)?;
    let scores = match args.window {
        None if ids.len() > context => return Err(too_long(ids.len().to_string())),
        None => scoring::score(&loaded.model, &ids)?,
        Some(window) => {
            if window > context {
                bail!("--window {window} is longer than the model's context of {context} tokens");
            }
            let stride = args.stride(window);
            let bar = ProgressBar::new((ids.len() - 1) as u64).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} tokens scored {elapsed}")
                    .expect("a valid template"),
            );
            let scores =
                scoring::score_windowed(&loaded.model, &ids, window, stride, |done, _| {
                    bar.set_position(done as u64)
                })?;
            bar.finish_and_clear();
            scores
        }
    };
    if args.json {
        let doc = json!({
            "tokens": ids.len(),
            "token_ids": ids,
            "perplexity": scores.perplexity,
            "logprobs": scores.logprobs,
        });
        output::line(&doc.to_string())?;
    } else {
        output::line(&format!(
            "perplexity {:.4} over {} tokens",
            scores.perplexity,
            ids.len()
        ))?;
    }
    Ok(())
}

/// The first `bytes` bytes of `text`, or fewer, to end on a character boundary.
fn prefix(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
