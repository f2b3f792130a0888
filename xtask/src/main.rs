//! `cargo xtask <command>`: the project's automation, in Rust.

mod tiny_model;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a tiny Gemma 3 checkpoint with deterministic random weights.
    TinyModel {
        /// Output directory (created if missing).
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = tiny_model::Preset::Text)]
        preset: tiny_model::Preset,
        #[arg(long, default_value_t = 0x6e6d_6133)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::TinyModel { dir, preset, seed } => tiny_model::write(&dir, preset, seed),
    }
}
