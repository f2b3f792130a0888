//! `golden [--bless]` (run by `cargo xtask golden`): judge a fresh trace of the committed tiny
//! checkpoints against `golden/ops` on every CPU kernel path here, or rewrite `golden/ops`
//! from it. The only writer of the goldens.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use inference::ops::cpu::kernel_path::KernelPath;
use op_matrix::{bless, retrace};

#[derive(Parser)]
#[command(
    name = "golden",
    about = "Check or rewrite the op goldens in golden/ops"
)]
struct Cli {
    /// Rewrite golden/ops from a fresh trace instead of checking it.
    #[arg(long)]
    bless: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse().bless) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's `golden/`, where this crate was built from.
fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

fn run(bless: bool) -> Result<bool> {
    let root = golden_root();
    let dir = root.join("ops");
    let sources = bless::Sources::committed(&root);
    if bless {
        let n = bless::bless(&dir, &sources).context("blessing the goldens")?;
        println!("wrote {n} cases to {}", dir.display());
        return Ok(true);
    }
    let diffs = retrace::check_every_path(&dir, &sources).context("checking the goldens")?;
    if diffs.is_empty() {
        let paths: Vec<&str> = KernelPath::supported().iter().map(|p| p.name()).collect();
        println!(
            "goldens in {} match a fresh trace on every CPU kernel path here ({})",
            dir.display(),
            paths.join(", ")
        );
        return Ok(true);
    }
    eprintln!("the goldens differ from a fresh trace:");
    for d in &diffs {
        eprintln!("  {d}");
    }
    eprintln!("review the change, then run `cargo xtask golden --bless`");
    Ok(false)
}
