//! The transformers peer (`scripts/bench/transformers_cpu.py`), run in the bench's venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use super::checkpoints::Checkpoint;
use super::engine::{CheckpointBench, Engine, Measurement, NotReady};
use super::process::{self, log_path};
use super::report::{Metrics, Point};
use super::venv::Venv;
use super::Env;

/// The transformers peer, in the venv.
pub struct Transformers {
    venv: Venv,
}

impl Transformers {
    pub const NAME: &str = "transformers";

    pub fn new(venv: Venv) -> Self {
        Transformers { venv }
    }
}

impl Engine for Transformers {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn prepare(&mut self, bench: &CheckpointBench) -> Result<(), NotReady> {
        if bench.ckpt.gguf.is_some() {
            return Err(NotReady::Skipped(
                "transformers dequantizes a GGUF file on load: no quantized peer".into(),
            ));
        }
        Ok(())
    }

    fn measure(&mut self, bench: &CheckpointBench) -> Result<Measurement> {
        let (args, ckpt) = (bench.args, bench.ckpt);
        let r = measure(
            &self.venv,
            ckpt,
            bench.ids_file,
            args.prompt_tokens,
            args.new_tokens,
            bench.env,
        )?;
        let mut m = Measurement::new(r.metrics);
        m.version = Some(r.version);
        m.tokens = Some(r.token_ids);
        Ok(m)
    }

    fn sweep(&mut self, bench: &CheckpointBench) -> Result<Vec<Point>> {
        bench.sweep_quietly(&self.label(), || {
            sweep(
                &self.venv,
                bench.ckpt,
                bench.ids_file,
                bench.contexts,
                bench.args.sweep_new_tokens,
                bench.env,
            )
        })
    }
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
        .args(["--dtype", ckpt.dtype.run_dtype()])
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
