//! `cargo xtask <command>`: the project's automation, in Rust.

mod golden;
mod tiny_model;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the op-matrix (the project's main job); arguments after `--` go to it.
    OpMatrix {
        /// Cargo features to build it with, e.g. `cuda` or `metal` (the inference crate's).
        #[arg(long)]
        features: Option<String>,
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check the op goldens against a fresh trace; `--bless` rewrites them.
    Golden {
        #[arg(long)]
        bless: bool,
    },
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

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::OpMatrix {
            features,
            release,
            args,
        } => op_matrix(features, release, &args),
        Command::Golden { bless } => golden::run(bless),
        Command::TinyModel { dir, preset, seed } => {
            tiny_model::write(&dir, preset, seed).map(|()| true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds and runs the op-matrix binary with the given features, so it tests that build.
fn op_matrix(features: Option<String>, release: bool, args: &[String]) -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Process::new(cargo);
    cmd.current_dir(repo_root())
        .args(["run", "--quiet", "-p", "op-matrix"]);
    if let Some(f) = features {
        cmd.args(["--features", &f]);
    }
    if release {
        cmd.arg("--release");
    }
    let status = cmd.arg("--").args(args).status().context("running cargo")?;
    Ok(status.success())
}
