//! `cargo xtask <command>`: the project's automation, in Rust.

mod audit;
mod bench;
mod bundle;
mod check_metal;
mod cross_test;
mod cuda_toolkit;
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
    /// Check that candle-nn and candle-transformers get every backend feature candle-core gets,
    /// for every target and shipped feature set.
    Audit {
        /// The workspace to audit [default: this one].
        #[arg(long)]
        manifest_path: Option<PathBuf>,
        /// Also audit these feature sets (each a comma-separated list).
        #[arg(long)]
        features: Vec<String>,
    },
    /// Type-check the workspace with `--features metal` on a machine without Metal.
    CheckMetal,
    /// Cross-build the inference crate's unit tests and the op-matrix for TARGET with Debian's
    /// packages and run them under qemu-user on the CPU backend (correctness, not speed).
    CrossTest {
        target: cross_test::Target,
        /// Install the missing Debian packages with apt-get instead of listing the commands.
        #[arg(long)]
        install: bool,
        /// The CPU qemu emulates, e.g. `neoverse-n1`, or `cortex-a72`, which has neither FP16
        /// arithmetic nor bf16 [default: qemu's `max`, which has both].
        #[arg(long)]
        cpu: Option<String>,
        /// The CPU kernel paths to run the op-matrix on, one run each (`GEMMA3_CPU_KERNELS`);
        /// the unit tests check every path the emulated CPU has.
        #[arg(long, value_delimiter = ',', default_value = "neon-bf16,neon")]
        kernel_paths: Vec<String>,
        /// The rustc with the target's standard library (Debian's rustc-web).
        #[arg(long, default_value = cross_test::DEBIAN_RUSTC)]
        rustc: PathBuf,
        /// Arguments for the op-matrix, after `--backend cpu`.
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
        /// Also write the checkpoint as GGUF files, one per type (`f32`, `bf16`, `q4_0`,
        /// `q8_0`, `q4_k`, ...): `DIR/model-TYPE.gguf`, run with `gemma3 --gguf FILE`.
        #[arg(long, value_delimiter = ',', value_name = "TYPES")]
        gguf: Vec<String>,
    },
    /// Benchmark gemma3 on the CPU against transformers and llama.cpp on generated checkpoints
    /// (tiny and a random-weight 1B), with the memory-bandwidth floor: table, JSON and SVG
    /// under target/bench.
    Bench(bench::Args),
    /// Run a program and write its peak RSS to a file (the bench's process helper).
    #[command(hide = true)]
    RusageExec {
        out: PathBuf,
        program: std::ffi::OsString,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Install a CUDA 13.0 toolkit from PyPI wheels and print the environment to build with.
    CudaToolkit {
        /// Cache folder for the venv and the CUDA root [default: target/cuda-toolkit].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// GPU compute capability to build kernels for (90 = H100).
        #[arg(long, default_value = "90")]
        compute_cap: String,
    },
    /// Build op-matrix and gemma3 for CUDA and pack them into a .tar.xz for a GPU machine.
    Bundle {
        /// Cargo features, applied to both packages.
        #[arg(long, default_value = "cuda")]
        features: String,
        /// Output folder [default: artifacts/cuda].
        #[arg(long)]
        out: Option<PathBuf>,
        /// GPU compute capability to build kernels for (90 = H100).
        #[arg(long, default_value = "90")]
        compute_cap: String,
    },
}

/// The workspace this run of xtask was started from. `cargo run` says where at run time; the
/// path compiled in is only a fallback, since a target directory shared by two checkouts keeps
/// one xtask binary, and its compiled-in path names whichever checkout built it.
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        manifest
            .parent()
            .expect("xtask lives in the workspace")
            .to_path_buf()
    })
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::OpMatrix {
            features,
            release,
            args,
        } => cargo_run("op-matrix", features, release, &args),
        Command::Audit {
            manifest_path,
            features,
        } => run_audit(manifest_path, &features),
        Command::CheckMetal => check_metal::run(),
        Command::CrossTest {
            target,
            install,
            cpu,
            kernel_paths,
            rustc,
            args,
        } => cross_test::run(&cross_test::Options {
            target,
            install,
            cpu,
            kernel_paths,
            rustc,
            op_matrix_args: args,
        }),
        Command::Golden { bless } => {
            let args: &[&str] = if bless { &["--bless"] } else { &[] };
            cargo_run("golden", None, false, args)
        }
        Command::TinyModel {
            dir,
            preset,
            seed,
            gguf,
        } => tiny_model::write(&dir, preset, seed).and_then(|()| write_ggufs(&dir, &gguf)),
        Command::Bench(args) => bench::run(args),
        Command::RusageExec { out, program, args } => {
            return match bench::rusage_exec(&out, &program, &args) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(127)
                }
            };
        }
        Command::CudaToolkit { dir, compute_cap } => {
            cuda_toolkit::run(dir.as_deref(), &compute_cap)
        }
        Command::Bundle {
            features,
            out,
            compute_cap,
        } => bundle::run(&features, out.as_deref(), &compute_cap),
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

/// Builds and runs a binary of the op-matrix package with the given features, so it tests
/// that build.
/// The checkpoint in `dir` as one GGUF file per type, by the inference crate's writer (the
/// one the tests and llama.cpp's reference read), so that this crate keeps out of the model.
fn write_ggufs(dir: &std::path::Path, types: &[String]) -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for kind in types {
        let out = dir.join(format!("model-{kind}.gguf"));
        let status = Process::new(&cargo)
            .current_dir(repo_root())
            .args(["run", "--quiet", "--release", "-p", "inference"])
            .args(["--example", "write_gguf", "--"])
            .arg(dir)
            .arg(&out)
            .arg(kind)
            .status()
            .context("running cargo")?;
        if !status.success() {
            return Ok(false);
        }
        println!("wrote {}", out.display());
    }
    Ok(true)
}

fn cargo_run(
    bin: &str,
    features: Option<String>,
    release: bool,
    args: &[impl AsRef<std::ffi::OsStr>],
) -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Process::new(cargo);
    cmd.current_dir(repo_root())
        .args(["run", "--quiet", "-p", "op-matrix", "--bin", bin]);
    if let Some(f) = features {
        cmd.args(["--features", &f]);
    }
    if release {
        cmd.arg("--release");
    }
    let status = cmd.arg("--").args(args).status().context("running cargo")?;
    Ok(status.success())
}

fn run_audit(manifest: Option<PathBuf>, extra: &[String]) -> Result<bool> {
    let manifest = manifest.unwrap_or_else(|| repo_root().join("Cargo.toml"));
    let (builds, findings) = audit::audit(&manifest, extra)?;
    if findings.is_empty() {
        println!(
            "audit: ok: {} builds (binary package x feature set x target) keep candle's backend features consistent",
            builds.len()
        );
        return Ok(true);
    }
    eprintln!(
        "audit: {} problem(s) in {}:",
        findings.len(),
        manifest.display()
    );
    for f in &findings {
        eprintln!("- {f}");
    }
    Ok(false)
}
