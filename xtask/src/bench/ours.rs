//! Our engine: the release `gemma3 generate --json` on a bench checkpoint, with the prompt
//! written as the word-level tokenizer's `t<id>` words so it is exactly the bench's ids, on the
//! CPU kernel path the CLI picks or the one `GEMMA3_CPU_KERNELS` forces.

use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use inference::ops::cpu::kernel_path::{self, KernelPath};
use serde_json::Value;

use super::checkpoints::{prompt_text, Checkpoint};
use super::process::{self, log_path};
use super::report::Metrics;
use super::Env;

/// `--cpu-kernels`: which of our CPU kernel paths a run measures.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuKernels {
    /// The one the CLI picks by itself.
    Best,
    /// Every path this CPU can run.
    All,
    /// These paths, in this order.
    List(Vec<KernelPath>),
}

impl FromStr for CpuKernels {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "best" => Ok(Self::Best),
            "all" => Ok(Self::All),
            list => {
                let mut paths = Vec::new();
                for name in list.split(',') {
                    let path: KernelPath = name.parse().map_err(|e| format!("{e}"))?;
                    if !paths.contains(&path) {
                        paths.push(path);
                    }
                }
                Ok(Self::List(paths))
            }
        }
    }
}

impl CpuKernels {
    /// The path to force for each measurement of ours (`None`: the CLI's own choice), given the
    /// paths this CPU can run; an error for a listed path it cannot.
    pub fn paths(&self, supported: &[KernelPath]) -> Result<Vec<Option<KernelPath>>> {
        match self {
            Self::Best => Ok(vec![None]),
            Self::All => Ok(supported.iter().copied().map(Some).collect()),
            Self::List(paths) => paths
                .iter()
                .map(|&p| {
                    if !supported.contains(&p) {
                        let here: Vec<&str> = supported.iter().map(|p| p.name()).collect();
                        bail!(
                            "--cpu-kernels {p}: it needs {}, which this CPU lacks; it can run {}",
                            p.requires(),
                            here.join(", ")
                        );
                    }
                    Ok(Some(p))
                })
                .collect(),
        }
    }
}

pub struct Generated {
    pub metrics: Metrics,
    pub token_ids: Vec<u32>,
    /// The CPU kernel path it ran on, as its stats name it.
    pub cpu_kernels: String,
}

/// One `gemma3 generate` of `new_tokens` greedy tokens after `ids`, on the kernel path
/// `kernels` (`None`: the CLI's own choice).
pub fn generate(
    bin: &Path,
    kernels: Option<KernelPath>,
    ckpt: &Checkpoint,
    ids: &[u32],
    new_tokens: usize,
    env: &Env,
    label: &str,
) -> Result<Generated> {
    let mut cmd = Command::new(bin);
    cmd.arg("generate")
        .arg("--model-dir")
        .arg(&ckpt.dir)
        .args(["--raw", "--prompt", &prompt_text(ids)])
        .args(["--max-tokens", &new_tokens.to_string()])
        .args(["--ignore-eos", "--json", "--device", "cpu"])
        .args(["--dtype", ckpt.dtype.name()])
        // The preflight's latency is in its info-level log line.
        .env("GEMMA3_LOG", "info")
        .env("NO_COLOR", "1")
        .env("RAYON_NUM_THREADS", env.threads.to_string());
    let mut name = format!("gemma3-{}-{}", ckpt.model.name(), ckpt.dtype.name());
    if let Some(path) = kernels {
        cmd.env(kernel_path::ENV, path.name());
        name = format!("{name}-{path}");
    }
    let name = format!("{name}-{label}");
    let done = process::run(
        &mut cmd,
        &format!("gemma3 generate ({name})"),
        &log_path(&env.logs, &name),
        "check that the release build of gemma3 runs (`cargo build --release -p gemma3-cli`)",
    )?;
    let doc = done
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .context("gemma3 generate --json printed no JSON")?;
    let stats = &doc["stats"];
    let f = |k: &str| {
        stats[k]
            .as_f64()
            .with_context(|| format!("gemma3's stats have no number {k}: {stats}"))
    };
    let cpu_kernels = stats["cpu_kernels"]
        .as_str()
        .with_context(|| format!("gemma3's stats name no cpu_kernels (a binary older than the kernel paths?): {stats}"))?
        .to_owned();
    if let Some(path) = kernels.filter(|p| p.name() != cpu_kernels) {
        bail!("gemma3 ran on the {cpu_kernels} kernels, not the {path} ones it was asked for");
    }
    let prompt_tokens = f("prompt_tokens")? as usize;
    if prompt_tokens != ids.len() {
        bail!(
            "gemma3 saw {prompt_tokens} prompt tokens, the bench sent {}: the checkpoint's tokenizer is not the bench's word-level one",
            ids.len()
        );
    }
    let token_ids = doc["token_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect()
        })
        .unwrap_or_default();
    Ok(Generated {
        metrics: Metrics {
            prompt_tokens,
            generated_tokens: f("generated_tokens")? as usize,
            prefill_tok_s: f("prefill_tok_s")?,
            decode_tok_s: f("decode_tok_s")?,
            ttft_ms: Some(f("ttft_ms")?),
            load_s: Some(f("load_s")?),
            peak_rss_bytes: Some(done.peak_rss_bytes),
            preflight_ms: preflight_ms(&done.stderr),
            others_cores: done.others_cores,
        },
        token_ids,
        cpu_kernels,
    })
}

/// The preflight's latency from the log line `preflight on cpu (BF16): 470 ops in 3.2 ms`.
pub fn preflight_ms(stderr: &str) -> Option<f64> {
    stderr
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains("preflight on"))
        .find_map(|l| {
            let (_, rest) = l.rsplit_once(" in ")?;
            rest.trim().strip_suffix("ms")?.trim().parse().ok()
        })
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preflight_latency_is_read_from_the_log() {
        let log = "\u{1b}[2m2026-11-26T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m gemma3_cli::model_args: preflight on cpu (BF16): 470 ops in 3.25 ms\nload 0.20 s";
        assert_eq!(preflight_ms(log), Some(3.25));
        assert_eq!(preflight_ms("load 0.20 s, prompt 5 tokens"), None);
    }

    #[test]
    fn cpu_kernels_parse_best_all_or_a_list() {
        assert_eq!("best".parse::<CpuKernels>(), Ok(CpuKernels::Best));
        assert_eq!("all".parse::<CpuKernels>(), Ok(CpuKernels::All));
        assert_eq!(
            "avx2,portable,avx2".parse::<CpuKernels>(),
            Ok(CpuKernels::List(vec![
                KernelPath::Avx2,
                KernelPath::Portable
            ]))
        );
        let err = "avx2,sse".parse::<CpuKernels>().unwrap_err();
        assert!(err.contains("`sse`"), "{err}");
    }

    #[test]
    fn the_paths_measured_are_the_clis_choice_every_supported_one_or_those_listed() {
        use KernelPath::*;
        let here = [Avx2, Portable];
        assert_eq!(CpuKernels::Best.paths(&here).unwrap(), vec![None]);
        assert_eq!(
            CpuKernels::All.paths(&here).unwrap(),
            vec![Some(Avx2), Some(Portable)]
        );
        let listed = CpuKernels::List(vec![Portable, Avx2]);
        assert_eq!(
            listed.paths(&here).unwrap(),
            vec![Some(Portable), Some(Avx2)]
        );
        let err = CpuKernels::List(vec![Avx512]).paths(&here).unwrap_err();
        assert!(
            err.to_string().contains("avx512") && err.to_string().contains("avx2, portable"),
            "{err}"
        );
    }
}
