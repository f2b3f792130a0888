//! `gemma3 generate`: continue a prompt, streaming the text as it is generated.

use std::time::Instant;

use anyhow::Result;
use gemma3_interface::generation_report::{FallbackStats, GenerationReport, GenerationStats};
use inference::run::generation::{self, Flow, StopReason};
use inference::text::chat::Message;
use inference::text::detokenize::TokenStream;

use super::interrupt::{self, Interrupted};
use super::model_args::{Loaded, ModelArgs};
use super::output;
use super::sampling_args::SamplingArgs;
use super::stop_strings::StopStrings;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to continue (or, for an instruction-tuned model, the user's message).
    #[arg(short, long)]
    prompt: String,
    /// A system prompt, for chat-template models.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Most new tokens to generate.
    #[arg(short = 'n', long, default_value_t = 128)]
    max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Stop when the output contains this string (repeatable); the text ends before it.
    #[arg(long)]
    stop: Vec<String>,
    /// Print JSON with the generated token ids and a `stats` object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Keep generating past end-of-sequence tokens (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
}

/// The prompt's token ids: through the chat template when the checkpoint has one, as
/// transformers' `apply_chat_template` does (the template writes `<bos>` itself).
fn prompt_ids(loaded: &Loaded, args: &Args) -> Result<Vec<u32>> {
    let template = if args.raw {
        None
    } else {
        loaded.chat_template.as_ref()
    };
    match template {
        Some(t) => {
            let mut messages = Vec::new();
            if let Some(system) = &args.system {
                messages.push(Message::new("system", system.clone()));
            }
            messages.push(Message::new("user", args.prompt.clone()));
            let text = t.render(&messages, true)?;
            Ok(loaded.tokenizer.encode_with(&text, false)?)
        }
        None => Ok(loaded.tokenizer.encode(&args.prompt)?),
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let loaded = args.model.load()?;
    let load_s = started.elapsed().as_secs_f64();
    let mut sampler = args.sampling.sampler(loaded.generation_config.as_ref())?;
    let prompt = prompt_ids(&loaded, &args)?;
    let stop_ids = if args.ignore_eos {
        Vec::new()
    } else {
        loaded.stop_ids()
    };

    let mut stream = TokenStream::new(&loaded.tokenizer);
    let mut text = String::new();
    let mut stops = StopStrings::new(&args.stop);
    let mut closed = false;
    let mut cache = loaded.model.new_cache();
    let (generation, interrupted) = interrupt::generating(|| {
        generation::generate(
            &loaded.model,
            &mut cache,
            &prompt,
            args.max_tokens,
            &stop_ids,
            &mut sampler,
            |id| {
                if interrupt::requested() {
                    return Ok(Flow::Stop);
                }
                let Some(piece) = stream.push(id)? else {
                    return Ok(Flow::Continue);
                };
                text.push_str(&piece);
                let passed = stops.push(&text);
                if !args.json && !output::stream(passed.text)? {
                    closed = true;
                    return Ok(Flow::Stop);
                }
                Ok(if passed.stopped {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            },
        )
    });
    let generation = generation?;
    if closed {
        return Err(output::ClosedPipe.into());
    }
    text.push_str(&stream.finish()?.unwrap_or_default());
    let rest = stops.finish(&text);
    if !args.json {
        output::line(rest)?;
    }
    text.truncate(stops.len());
    if generation.stop == StopReason::ContextFull {
        eprintln!(
            "note: stopped after {} tokens: the context of {} positions is full",
            generation.tokens.len(),
            loaded.model.config().max_position_embeddings
        );
    }

    if generation.stop == StopReason::MaxTokens && !args.ignore_eos {
        eprintln!(
            "note: cut off at --max-tokens {}; raise it for a longer reply",
            args.max_tokens
        );
    }
    if interrupted {
        eprintln!("note: interrupted after {} tokens", generation.tokens.len());
    }

    let t = generation.timings;
    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(f64::MIN_POSITIVE);
    let fallback = loaded.fallback.as_ref().map(|plan| {
        let usage = plan.usage();
        FallbackStats {
            ops: plan.ops().map(|op| op.name().to_owned()).collect(),
            calls: usage.calls,
            ms: usage.time.as_secs_f64() * 1e3,
        }
    });
    let stats = GenerationStats {
        prompt_tokens: prompt.len(),
        generated_tokens: generation.tokens.len(),
        load_s,
        ttft_ms: t.prefill.as_secs_f64() * 1e3,
        prefill_tok_s: rate(prompt.len(), t.prefill),
        decode_tok_s: rate(t.decode_steps, t.decode),
        preflight_ms: loaded.preflight.map(|d| d.as_secs_f64() * 1e3),
        cpu_kernels: inference::ops::cpu::kernel_path::active().name().to_owned(),
        dtype: loaded.model.dtype().as_str().to_owned(),
        fallback,
    };
    let mut line = format!(
        "load {load_s:.2} s ({}), prompt {} tokens at {:.1} tok/s, generated {} tokens at {:.1} tok/s, first token after {:.0} ms",
        stats.dtype,
        stats.prompt_tokens, stats.prefill_tok_s, stats.generated_tokens, stats.decode_tok_s, stats.ttft_ms,
    );
    if let Some(f) = &stats.fallback {
        line += &format!(
            ", {} on the cpu: {} calls, {:.1} ms",
            f.ops.join(", "),
            f.calls,
            f.ms
        );
    }
    eprintln!("{line}");
    if args.json {
        let stop = generation.stop.reported(interrupted);
        let doc = GenerationReport {
            prompt_tokens: prompt.len(),
            stop,
            finish_reason: stop.finish_reason(),
            token_ids: generation.tokens,
            text,
            stats,
        };
        output::line(&serde_json::to_string(&doc)?)?;
    }
    if interrupted {
        return Err(Interrupted.into());
    }
    Ok(())
}
