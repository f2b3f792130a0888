//! `gemma3 chat`: an interactive multi-turn conversation that keeps the KV cache across turns.
//! Reads one message per line from stdin, edited on a terminal, or piped.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use inference::run::conversation::Conversation;
use inference::run::generation::{self, Flow, StopReason};
use inference::text::detokenize::TokenStream;

use super::chat_input::{Line, Messages};
use super::interrupt;
use super::model_args::ModelArgs;
use super::output;
use super::sampling_args::SamplingArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A system prompt for the whole conversation.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per reply.
    #[arg(short = 'n', long, default_value_t = 512)]
    max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let mut sampler = args.sampling.sampler(loaded.generation_config.as_ref())?;
    let Some(template) = loaded.chat_template.clone() else {
        bail!("this checkpoint has no chat template in tokenizer_config.json; use `gemma3 generate --raw`");
    };
    let context = loaded.model.config().max_position_embeddings;
    let reserve = args.max_tokens.min(context / 2);
    let stop_ids = loaded.stop_ids();
    let mut conversation = Conversation::new(template, args.system.clone());
    let mut cache = loaded.model.new_cache();
    if std::io::stdin().is_terminal() {
        eprintln!(
            "chat with the model; \"\"\" opens and closes a message of several lines, /reset \
             starts over, /exit (or end of input) quits"
        );
    }
    // No message of more bytes than this fits: a token is rarely over 16 bytes.
    let limit = context.saturating_mul(16).max(1 << 16);
    let mut messages = Messages::stdin(limit)?;
    loop {
        let line = match messages.next()? {
            None => break,
            Some(Line::Text(line)) => line,
            Some(Line::Refused(why)) => {
                eprintln!("error: {why}");
                continue;
            }
        };
        let message = line.trim();
        match message {
            "" => continue,
            "/exit" => break,
            "/reset" => {
                conversation.reset(&mut cache);
                eprintln!("(conversation reset)");
                continue;
            }
            _ => {}
        }
        let turn = match conversation.user_turn(
            message,
            &loaded.tokenizer,
            &mut cache,
            context,
            reserve,
        ) {
            Ok(turn) => turn,
            Err(e) => {
                // The conversation is as it was: say why, and wait for the next message.
                eprintln!("error: {e}{}", reserve_note(&e, reserve));
                continue;
            }
        };
        if turn.dropped > 0 {
            eprintln!(
                "note: dropped the {} oldest exchange(s) to fit the context of {context} tokens",
                turn.dropped
            );
        }
        let mut stream = TokenStream::new(&loaded.tokenizer);
        let mut reply = String::new();
        let mut closed = false;
        let (generation, interrupted) = interrupt::generating(|| {
            generation::generate(
                &loaded.model,
                &mut cache,
                &turn.feed,
                args.max_tokens,
                &stop_ids,
                &mut sampler,
                |id| {
                    if interrupt::requested() {
                        return Ok(Flow::Stop);
                    }
                    if let Some(piece) = stream.push(id)? {
                        reply.push_str(&piece);
                        if !output::stream(&piece)? {
                            closed = true;
                            return Ok(Flow::Stop);
                        }
                    }
                    Ok(Flow::Continue)
                },
            )
        });
        let generation = generation?;
        if closed {
            return Err(output::ClosedPipe.into());
        }
        let rest = stream.finish()?.unwrap_or_default();
        reply.push_str(&rest);
        output::line(&rest)?;
        conversation.assistant_reply(&reply, &generation.tokens);
        let t = generation.timings;
        eprintln!(
            "(prompt {} new tokens, {} cached; {} tokens at {:.1} tok/s)",
            turn.feed.len(),
            turn.reused,
            generation.tokens.len(),
            t.decode_steps as f64 / t.decode.as_secs_f64().max(f64::MIN_POSITIVE)
        );
        if interrupted {
            eprintln!("(reply interrupted; Ctrl-C at the prompt quits)");
        }
        if generation.stop == StopReason::ContextFull {
            eprintln!("note: the reply stopped because the context of {context} tokens is full");
        }
    }
    Ok(())
}

/// For a message that does not fit: the positions kept for the reply are part of the count.
fn reserve_note(e: &inference::Error, reserve: usize) -> String {
    match e {
        inference::Error::ContextOverflow { .. } => format!(
            " (that counts {reserve} positions kept for the reply; a smaller --max-tokens keeps fewer)"
        ),
        _ => String::new(),
    }
}
