//! Our engine: the release `gemma3 generate --json` on a bench checkpoint, with the prompt
//! written as the word-level tokenizer's `t<id>` words so it is exactly the bench's ids, on the
//! CPU kernel path the CLI picks or the one `GEMMA3_CPU_KERNELS` forces; its document is read
//! as the CLI's own type, `GenerationReport`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use gemma3_interface::generation_report::GenerationReport;
use gemma3_interface::kernel_path::{self, KernelPath};

use super::checkpoints::{prompt_text, Checkpoint};
use super::engine::{CheckpointBench, Engine, Measurement, NotReady};
use super::process::{self, log_path};
use super::report::{Metrics, Point, OURS};
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

/// Ours on one CPU kernel path: the path forced through `GEMMA3_CPU_KERNELS` (`None`: the one
/// it picks).
pub struct Ours {
    bin: PathBuf,
    path: Option<KernelPath>,
}

impl Ours {
    pub fn new(bin: &Path, path: Option<KernelPath>) -> Self {
        Ours {
            bin: bin.to_owned(),
            path,
        }
    }

    fn generate(
        &self,
        bench: &CheckpointBench,
        ids: &[u32],
        new_tokens: usize,
        label: &str,
    ) -> Result<Generated> {
        generate(
            &self.bin, self.path, bench.ckpt, ids, new_tokens, bench.env, label,
        )
    }
}

impl Engine for Ours {
    fn name(&self) -> &'static str {
        OURS
    }

    /// The path asked for; the row takes the path its stats name once it ran.
    fn variant(&self) -> Option<String> {
        self.path.map(|p| p.name().to_owned())
    }

    fn prepare(&mut self, _: &CheckpointBench) -> Result<(), NotReady> {
        Ok(())
    }

    fn measure(&mut self, bench: &CheckpointBench) -> Result<Measurement> {
        let g = self.generate(bench, bench.prompt(), bench.args.new_tokens, "main")?;
        let mut m = Measurement::new(g.metrics);
        if m.metrics.preflight_ms.is_none() {
            m.notes.push("no preflight time in its stats".into());
        }
        m.variant = Some(g.cpu_kernels);
        m.tokens = Some(g.token_ids);
        Ok(m)
    }

    /// A process per context, each the best of the runs.
    fn sweep(&mut self, bench: &CheckpointBench) -> Result<Vec<Point>> {
        let env = bench.env;
        Ok(sweep_points(bench.contexts, |c| {
            best_of(env.runs, || {
                env.quiet.measure(
                    &format!("{}: {} at context {c}", bench.label, self.label()),
                    || {
                        self.generate(
                            bench,
                            &bench.ids[..c],
                            bench.args.sweep_new_tokens,
                            &format!("ctx{c}"),
                        )
                    },
                    |g| g.metrics.others_cores,
                )
            })
            .map(|g| g.metrics.decode_tok_s)
        }))
    }
}

/// Two tokens after two, before a checkpoint's measurements: the checkpoint in the page
/// cache, so that every engine's load time compares.
pub fn warm_up(bin: &Path, bench: &CheckpointBench) {
    let _ = generate(
        bin,
        None,
        bench.ckpt,
        &bench.ids[..2],
        2,
        bench.env,
        "warmup",
    );
}

/// The best of `runs` tries, metric by metric ([`Metrics::best`]). The first error ends it.
fn best_of(runs: usize, mut f: impl FnMut() -> Result<Generated>) -> Result<Generated> {
    let mut best = f()?;
    for _ in 1..runs {
        let next = f()?;
        let metrics = best.metrics.best(&next.metrics);
        if next.metrics.decode_tok_s > best.metrics.decode_tok_s {
            best = next;
        }
        best.metrics = metrics;
    }
    Ok(best)
}

/// Points that measured; a failing context is logged and left out.
fn sweep_points(contexts: &[usize], mut f: impl FnMut(usize) -> Result<f64>) -> Vec<Point> {
    contexts
        .iter()
        .filter_map(|&c| match f(c) {
            Ok(v) => Some(Point {
                context: c,
                decode_tok_s: v,
            }),
            Err(e) => {
                tracing::warn!("context {c}: {e:#}");
                None
            }
        })
        .collect()
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
    let dir = ckpt.gguf.as_ref().map_or(&ckpt.dir, |g| &g.dir);
    cmd.arg("generate")
        .arg("--model-dir")
        .arg(dir)
        .args(["--raw", "--prompt", &prompt_text(ids)])
        .args(["--max-tokens", &new_tokens.to_string()])
        // Greedy, whatever the checkpoint's generation_config.json says: the peers decode
        // greedily, and their tokens are compared with ours.
        .args(["--temperature", "0"])
        .args(["--ignore-eos", "--json", "--device", "cpu"])
        .args(["--dtype", ckpt.dtype.run_dtype()])
        // Its log, kept in logs/, at info level: the device, the preflight, the kernel path.
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
        .find_map(|l| serde_json::from_str::<GenerationReport>(l.trim()).ok())
        .context("gemma3 generate --json printed no report this bench reads (a binary older than the bench?)")?;
    let stats = doc.stats;
    if let Some(path) = kernels.filter(|p| p.name() != stats.cpu_kernels) {
        bail!(
            "gemma3 ran on the {} kernels, not the {path} ones it was asked for",
            stats.cpu_kernels
        );
    }
    if stats.prompt_tokens != ids.len() {
        bail!(
            "gemma3 saw {} prompt tokens, the bench sent {}: the checkpoint's tokenizer is not the bench's word-level one",
            stats.prompt_tokens,
            ids.len()
        );
    }
    Ok(Generated {
        metrics: Metrics {
            prompt_tokens: stats.prompt_tokens,
            generated_tokens: stats.generated_tokens,
            prefill_tok_s: stats.prefill_tok_s,
            decode_tok_s: stats.decode_tok_s,
            ttft_ms: Some(stats.ttft_ms),
            load_s: Some(stats.load_s),
            peak_rss_bytes: Some(done.peak_rss_bytes),
            preflight_ms: stats.preflight_ms,
            others_cores: done.others_cores,
        },
        token_ids: doc.token_ids,
        cpu_kernels: stats.cpu_kernels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prefill_tok_s: f64, decode_tok_s: f64) -> Generated {
        Generated {
            metrics: Metrics {
                prompt_tokens: 128,
                generated_tokens: 64,
                prefill_tok_s,
                decode_tok_s,
                ttft_ms: Some(128_000.0 / prefill_tok_s),
                load_s: Some(0.5),
                peak_rss_bytes: None,
                preflight_ms: None,
                others_cores: None,
            },
            token_ids: vec![1, 2, 3],
            cpu_kernels: "avx2".into(),
        }
    }

    #[test]
    fn the_best_of_runs_takes_each_rate_from_its_fastest_run() {
        let mut runs = vec![run(150.0, 14.0), run(190.0, 13.0), run(170.0, 15.0)].into_iter();
        let best = best_of(3, || Ok(runs.next().unwrap())).unwrap();
        assert_eq!(best.metrics.decode_tok_s, 15.0);
        assert_eq!(best.metrics.prefill_tok_s, 190.0);
        assert_eq!(best.metrics.ttft_ms, Some(128_000.0 / 190.0));
        assert!(runs.next().is_none(), "every run was made");
        let mut failing = vec![Ok(run(1.0, 1.0)), Err(anyhow::anyhow!("boom"))].into_iter();
        assert!(best_of(2, || failing.next().unwrap()).is_err());
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
