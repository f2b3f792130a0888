//! `gemma3`: run, chat with and score Gemma 3 models. Each subcommand lives in its own module;
//! model loading, with its preflight, is shared in `model_args`.

mod chat;
mod chat_input;
mod doctor;
mod generate;
mod interrupt;
mod model_args;
mod output;
mod perplexity;
mod sampling_args;
mod stop_strings;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gemma3",
    version,
    about = "Run and score Gemma 3 models on Candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report the backends, devices, preflight per dtype, and the Hub cache and token.
    #[command(after_help = "Examples:
  gemma3 doctor
  gemma3 doctor --json")]
    Doctor(doctor::Args),
    /// Continue a prompt.
    #[command(after_help = "Examples:
  gemma3 generate -p \"Why is the sky blue?\"
  gemma3 generate -m google/gemma-3-4b-it -p \"Write a haiku about rain\" --temperature 0
  gemma3 generate --gguf gemma-3-1b-it-Q4_K_M.gguf -p \"Hello\" -n 64 --seed 7
  gemma3 generate --model-dir gemma-3-1b-pt --raw -p \"The capital of France is\" --json")]
    Generate(generate::Args),
    /// Talk to an instruction-tuned model, one message per line; the KV cache is kept across turns.
    #[command(after_help = "Examples:
  gemma3 chat
  gemma3 chat -m google/gemma-3-4b-it --system \"Be brief.\"
  gemma3 chat -m bartowski/google_gemma-3-1b-it-GGUF:Q4_K_M --temperature 0 < questions.txt")]
    Chat(chat::Args),
    /// Score a text: per-token log-probabilities and perplexity.
    #[command(after_help = "Examples:
  gemma3 perplexity --text \"The quick brown fox jumps over the lazy dog.\"
  gemma3 perplexity --model-dir gemma-3-1b-pt --file book.txt --window 1024 --stride 512
  gemma3 perplexity --gguf gemma-3-1b-it-Q4_0.gguf --file wiki.txt --json")]
    Perplexity(perplexity::Args),
    /// Print the shell completion script for SHELL.
    #[command(after_help = "Examples:
  gemma3 completions bash > ~/.local/share/bash-completion/completions/gemma3
  gemma3 completions zsh > ~/.zfunc/_gemma3
  gemma3 completions fish > ~/.config/fish/completions/gemma3.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The command line, with `generate` inserted when it starts with a flag: the legacy engine
/// took `--prompt '...' --which 3-1b-it` with no subcommand, and that must keep working.
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let is_flag = first.starts_with('-') && !matches!(first, "-h" | "--help" | "-V" | "--version");
    if is_flag {
        args.insert(1, "generate".into());
    }
    args
}

impl Command {
    /// Flags that each parse but do not fit together (`--top-p 2`, `--window 0`): refused as
    /// clap refuses a malformed flag, with exit 2, before anything loads.
    fn check_flags(&self) -> std::result::Result<(), String> {
        match self {
            Command::Generate(args) => args.sampling.check_flags(),
            Command::Chat(args) => args.sampling.check_flags(),
            Command::Perplexity(args) => args.check_flags(),
            Command::Doctor(_) | Command::Completions { .. } => Ok(()),
        }
    }

    fn threads(&self) -> Option<u32> {
        match self {
            Command::Generate(args) => args.model.threads,
            Command::Chat(args) => args.model.threads,
            Command::Perplexity(args) => args.model.threads,
            Command::Doctor(_) | Command::Completions { .. } => None,
        }
    }
}

pub fn run() -> Result<()> {
    let cli = Cli::parse_from(args());
    if let Err(why) = cli.command.check_flags() {
        Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, why)
            .exit();
    }
    if let Some(n) = cli.command.threads() {
        // Read by rayon's pool and by Candle's, both built on first use, after this.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // A bad GEMMA3_CPU_KERNELS stops here, before any model loads, with what this CPU can run.
    inference::ops::cpu::kernel_path::from_env()?;
    match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Doctor(args) => {
            if !doctor::run(args)? {
                anyhow::bail!("some backend cannot run the model; see above");
            }
            Ok(())
        }
        Command::Perplexity(args) => perplexity::run(args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gemma3", &mut script);
            output::write(&String::from_utf8(script)?)
        }
    }
}

/// Logs on standard error: `GEMMA3_LOG`, else `RUST_LOG` (as every tracing program reads it),
/// else warnings; in colour only when a terminal reads them.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = ["GEMMA3_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| tracing_subscriber::EnvFilter::try_from_env(var).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    inference::process::quiet_contained_panics();
    inference::process::park_idle_candle_workers();
    inference::process::keep_freed_memory();
    init_logging();
    if let Err(e) = interrupt::install().and_then(|()| run()) {
        if e.is::<interrupt::Interrupted>() {
            std::process::exit(interrupt::EXIT_CODE);
        }
        if output::is_closed(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line of an example, as the shell splits it: words, double-quoted strings
    /// whole, up to a redirection.
    fn words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)))
                }
                _ => word.push(c),
            }
        }
        words.push(word);
        words.retain(|w| !w.is_empty());
        let redirect = words.iter().position(|w| w == ">" || w == "<");
        words.truncate(redirect.unwrap_or(words.len()));
        words
    }

    #[test]
    fn every_subcommand_has_examples_that_parse_and_every_argument_has_help() {
        let mut cli = Cli::command();
        cli.build();
        // clap's own `help` subcommand has no examples to give.
        for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = sub.get_name();
            for arg in sub.get_arguments() {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(
                    !help.trim().is_empty(),
                    "{name} {} has no help",
                    arg.get_id()
                );
            }
            let after = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let examples: Vec<&str> = after
                .strip_prefix("Examples:\n")
                .unwrap_or_else(|| panic!("{name}: no Examples: section"))
                .lines()
                .map(str::trim)
                .collect();
            assert!((2..=4).contains(&examples.len()), "{name}: {examples:?}");
            for example in examples {
                let words = words(example);
                assert_eq!(words[..2], ["gemma3", name], "{example}");
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{example}: {e}");
                }
            }
        }
    }
}
