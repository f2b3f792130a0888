//! The Python side: a cached venv with the pinned peers (`scripts/bench/requirements.txt`),
//! and the transformers peer (`scripts/bench/transformers_cpu.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use super::checkpoints::Checkpoint;
use super::process::{self, log_path};
use super::report::{Metrics, Point};
use super::Env;

pub struct Venv {
    pub dir: PathBuf,
    pub python: PathBuf,
}

impl Venv {
    /// A program the venv installed (`cmake`), if it did.
    pub fn bin(&self, name: &str) -> Option<PathBuf> {
        let p = self.dir.join("bin").join(name);
        p.exists().then_some(p)
    }

    /// `pip install` into the venv, output to a log.
    pub fn pip(&self, args: &[&std::ffi::OsStr], what: &str, env: &Env) -> Result<()> {
        process::run(
            Command::new(&self.python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--no-input",
                    "--disable-pip-version-check",
                ])
                .args(args),
            what,
            &log_path(&env.logs, what),
            "check that PyPI is reachable (pip's own settings apply), or pass --skip-peers",
        )
        .map(drop)
    }
}

/// The venv under `target/bench/venv` with the pinned requirements; a marker holding the
/// requirements file records what was installed, so a rerun installs nothing.
pub fn ensure_venv(env: &Env) -> Result<Venv> {
    let dir = env.out.join("venv");
    let python = dir.join("bin/python");
    let requirements = env.repo.join("scripts/bench/requirements.txt");
    let want = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let marker = dir.join("bench-requirements.txt");
    let venv = Venv {
        dir: dir.clone(),
        python: python.clone(),
    };
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|have| have == want) {
        return Ok(venv);
    }
    if !python.exists() {
        tracing::info!("creating a Python venv in {}", dir.display());
        process::run(
            Command::new("python3").arg("-m").arg("venv").arg(&dir),
            "python3 -m venv",
            &log_path(&env.logs, "venv"),
            "install Python 3 with its venv module (Debian: python3-venv), or pass --skip-peers",
        )?;
    }
    tracing::info!(
        "installing the peers' Python packages (torch, transformers, …; several GB, once) into {}",
        dir.display()
    );
    venv.pip(
        &["-r".as_ref(), requirements.as_os_str()],
        "pip-install-requirements",
        env,
    )?;
    std::fs::write(&marker, want).with_context(|| format!("writing {}", marker.display()))?;
    Ok(venv)
}

pub struct Run {
    pub metrics: Metrics,
    pub token_ids: Vec<u32>,
    pub version: String,
}

fn script(env: &Env) -> PathBuf {
    env.repo.join("scripts/bench/transformers_cpu.py")
}

fn command(
    venv: &Venv,
    ckpt: &Checkpoint,
    ids_file: &Path,
    new_tokens: usize,
    runs: usize,
    env: &Env,
) -> Command {
    let mut cmd = Command::new(&venv.python);
    cmd.arg(script(env))
        .arg("--model-dir")
        .arg(&ckpt.dir)
        .args(["--dtype", ckpt.dtype.name()])
        .arg("--ids")
        .arg(ids_file)
        .args(["--new-tokens", &new_tokens.to_string()])
        .args(["--threads", &env.threads.to_string()])
        .args(["--runs", &runs.to_string()])
        // Offline: the checkpoint is local, and nothing else may be fetched.
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        .env("OMP_NUM_THREADS", env.threads.to_string());
    cmd
}

fn run_json(mut cmd: Command, name: &str, env: &Env) -> Result<(Value, process::Finished)> {
    let done = process::run(
        &mut cmd,
        &format!("transformers ({name})"),
        &log_path(&env.logs, name),
        "see the log; delete target/bench/venv to reinstall the Python packages",
    )?;
    let doc = done
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .context("the transformers script printed no JSON")?;
    Ok((doc, done))
}

/// Prefill, TTFT and decode on the prompt `ids_file[..prompt_tokens]`, once: the bench
/// repeats it in rounds with the other engines.
pub fn measure(
    venv: &Venv,
    ckpt: &Checkpoint,
    ids_file: &Path,
    prompt_tokens: usize,
    new_tokens: usize,
    env: &Env,
) -> Result<Run> {
    let mut cmd = command(venv, ckpt, ids_file, new_tokens, 1, env);
    cmd.args(["--prompt-tokens", &prompt_tokens.to_string()]);
    let name = format!("transformers-{}-{}", ckpt.model.name(), ckpt.dtype.name());
    let (doc, done) = run_json(cmd, &name, env)?;
    let f = |k: &str| {
        doc[k]
            .as_f64()
            .with_context(|| format!("the transformers script reported no number {k}: {doc}"))
    };
    Ok(Run {
        metrics: Metrics {
            prompt_tokens: f("prompt_tokens")? as usize,
            generated_tokens: f("generated_tokens")? as usize,
            prefill_tok_s: f("prefill_tok_s")?,
            decode_tok_s: f("decode_tok_s")?,
            ttft_ms: Some(f("ttft_ms")?),
            load_s: Some(f("load_s")?),
            peak_rss_bytes: Some(done.peak_rss_bytes),
            preflight_ms: None,
            others_cores: done.others_cores,
        },
        token_ids: doc["token_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().map(|v| v as u32))
                    .collect()
            })
            .unwrap_or_default(),
        version: format!(
            "{} (torch {})",
            doc["transformers"].as_str().unwrap_or("?"),
            doc["torch"].as_str().unwrap_or("?")
        ),
    })
}

/// Decode tokens/s after each context, in one process, and the other processes' load.
pub fn sweep(
    venv: &Venv,
    ckpt: &Checkpoint,
    ids_file: &Path,
    contexts: &[usize],
    new_tokens: usize,
    env: &Env,
) -> Result<(Vec<Point>, Option<f64>)> {
    let mut cmd = command(venv, ckpt, ids_file, new_tokens, env.runs, env);
    let list: Vec<String> = contexts.iter().map(usize::to_string).collect();
    cmd.args(["--contexts", &list.join(",")]);
    let name = format!(
        "transformers-{}-{}-sweep",
        ckpt.model.name(),
        ckpt.dtype.name()
    );
    let (doc, done) = run_json(cmd, &name, env)?;
    let points = doc["sweep"]
        .as_array()
        .context("the transformers script reported no sweep")?
        .iter()
        .map(|p| {
            Ok(Point {
                context: p["context"].as_u64().context("a sweep point's context")? as usize,
                decode_tok_s: p["decode_tok_s"]
                    .as_f64()
                    .context("a sweep point's decode_tok_s")?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((points, done.others_cores))
}
