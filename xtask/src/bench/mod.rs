//! `cargo xtask bench`: our engine against transformers and llama.cpp on the CPU, on the same
//! checkpoints and the same token ids, with the memory-bandwidth floor measured in the same run.
//!
//! Everything it makes is cached under `target/bench/`: the checkpoints (from a seed), the
//! Python venv, llama.cpp's build and the GGUF files. Results go to `report.json`, the tables
//! to stdout (and `report.txt`, `report.md`), the decode-vs-context plot to
//! `decode_vs_context.svg`, and every child's output to `logs/`.

mod bandwidth;
mod checkpoints;
mod engine;
mod llama_cpp;
mod ours;
mod process;
mod quiet;
mod report;
mod spm;
mod transformers;
mod venv;

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use checkpoints::{Checkpoint, Dtype, Model};
use engine::{CheckpointBench, Engine, NotReady, Unavailable};
use gemma3_interface::kernel_path::KernelPath;
use llama_cpp::{LlamaBuild, LlamaCpp};
use ours::Ours;
use report::{EngineRun, Metrics, ModelRun, Point, Report, OURS};
use transformers::Transformers;

pub use process::rusage_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Smoke test: the tiny model, our engine only, short lengths.
    #[arg(long)]
    quick: bool,
    /// Measure our engine only.
    #[arg(long)]
    skip_peers: bool,
    /// Our CPU kernel paths, a row each: `best` (the one gemma3 picks), `all` (every one this
    /// CPU can run) or a comma-separated list of portable, avx2, avx512, neon, neon-bf16.
    #[arg(long, default_value = "best", value_name = "best|all|LIST")]
    cpu_kernels: ours::CpuKernels,
    /// llama.cpp builds, a row each, comma-separated: native (for this CPU), avx2 (AVX2, FMA
    /// and F16C, no AVX-512).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "native")]
    llama_builds: Vec<LlamaBuild>,
    /// Only this checkpoint.
    #[arg(long, value_enum)]
    only: Option<Model>,
    /// Dtypes, comma-separated [default: f32,bf16]; q4_0, q8_0 and q4_k_m are the bf16
    /// checkpoint quantized by llama.cpp's `llama-quantize`, one GGUF file that our engine and
    /// llama.cpp both run (transformers has no row).
    #[arg(long, value_enum, value_delimiter = ',')]
    dtype: Vec<Dtype>,
    /// Prompt tokens for prefill, TTFT and the decode that follows.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// New tokens for the main measurement.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Contexts (prompt tokens before decoding) of the decode sweep, comma-separated; those
    /// that do not fit a checkpoint's positions are left out for it.
    #[arg(long, value_delimiter = ',', default_value = "128,512,1024,2048")]
    contexts: Vec<usize>,
    /// New tokens per point of the sweep.
    #[arg(long, default_value_t = 16)]
    sweep_new_tokens: usize,
    /// Skip the decode sweep (and the plot's lines).
    #[arg(long)]
    no_sweep: bool,
    /// Threads for every engine and for the bandwidth measurement.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repetitions of each measurement; the fastest decode and the fastest prefill are kept.
    /// The main measurements run in rounds of every engine once.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Seed of the 1B's weights and of the prompt.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// A measurement during which other processes kept more cores than this busy is taken
    /// again (see --retries); before each, the bench waits for a machine this quiet.
    #[arg(long, default_value_t = 0.3)]
    max_other_load: f64,
    /// Repetitions of a measurement disturbed by other processes; the least disturbed is kept.
    #[arg(long, default_value_t = 2)]
    retries: usize,
    /// Seconds the whole run may spend waiting for a quiet machine; then it measures anyway.
    #[arg(long, default_value_t = 1800)]
    patience: u64,
    /// Use the release binaries as they are instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Output and cache folder [default: target/bench].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Measure nothing: render this report.json again (tables, Markdown, SVG) into the output
    /// folder, judging which checkpoints fit in this machine's caches.
    #[arg(long, value_name = "REPORT_JSON")]
    render: Option<PathBuf>,
}

/// What every step needs: where things are, and the common settings.
pub struct Env {
    repo: PathBuf,
    out: PathBuf,
    logs: PathBuf,
    threads: usize,
    runs: usize,
    quiet: quiet::Quiet,
    /// Every bandwidth sample of the run.
    bandwidth: RefCell<Vec<report::Bandwidth>>,
}

impl Env {
    /// Samples the read bandwidth (on a quiet machine if it can), keeps it, returns GB/s.
    fn sample_bandwidth(&self, bar: &ProgressBar) -> f64 {
        bar.set_message("memory bandwidth");
        self.quiet.wait();
        let b = bandwidth::measure(512 << 20, self.threads, 4);
        tracing::info!(
            "memory bandwidth: read {:.1} GB/s, memcpy {:.1} GB/s",
            b.read_gb_s,
            b.copy_gb_s
        );
        let read = b.read_gb_s;
        self.bandwidth.borrow_mut().push(b);
        read
    }
}

static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Log lines go around the progress bar instead of through it.
struct AroundBar;

impl Write for AroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bars = BARS.lock().ok().and_then(|b| b.clone());
        match bars {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| AroundBar)
        .try_init();
}

fn set_bars(bars: Option<MultiProgress>) {
    if let Ok(mut b) = BARS.lock() {
        *b = bars;
    }
}

pub fn run(mut args: Args) -> Result<bool> {
    init_logging();
    process::use_helper(std::env::current_exe().context("finding the xtask binary")?);
    if args.quick {
        args.only = Some(Model::Tiny);
        args.skip_peers = true;
        args.prompt_tokens = 32;
        args.new_tokens = 16;
        args.contexts = vec![32, 128, 512];
        args.sweep_new_tokens = 8;
    }
    if args.dtype.is_empty() {
        args.dtype = vec![Dtype::F32, Dtype::Bf16];
    }
    if args.prompt_tokens < 2 || args.new_tokens < 2 || args.sweep_new_tokens < 2 {
        bail!("--prompt-tokens, --new-tokens and --sweep-new-tokens must be at least 2");
    }
    let models = match args.only {
        Some(m) => vec![m],
        None => vec![Model::Tiny, Model::OneB],
    };
    let repo = crate::repo_root().to_path_buf();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| repo.join("target/bench"));
    if let Some(json) = &args.render {
        let text =
            std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
        let mut report: Report =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
        for run in &mut report.runs {
            run.bandwidth_bound = run.checkpoint_bytes > 4 * last_level_cache_bytes();
        }
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        write_outputs(&mut report, &out)?;
        return Ok(true);
    }
    let lineup = Lineup {
        pairs: models
            .iter()
            .flat_map(|&m| args.dtype.iter().map(move |&d| (m, d)))
            .collect(),
        kernels: args.cpu_kernels.paths(&KernelPath::supported())?,
        llama_builds: llama_cpp::plan(&args.llama_builds, has_avx512()),
    };
    let env = Env {
        logs: out.join("logs"),
        out: out.clone(),
        repo: repo.clone(),
        threads: args.threads.max(1),
        runs: args.runs.max(1),
        quiet: quiet::Quiet::new(
            args.max_other_load,
            args.retries,
            Duration::from_secs(args.patience),
        ),
        bandwidth: RefCell::new(Vec::new()),
    };
    std::fs::create_dir_all(&env.logs)
        .with_context(|| format!("creating {}", env.logs.display()))?;

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let (gemma3, op_matrix) = (
        target.join("release/gemma3"),
        target.join("release/op-matrix"),
    );
    if !args.no_build {
        build_release(&repo)?;
    }
    for bin in [&gemma3, &op_matrix] {
        if !bin.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p gemma3-cli -p op-matrix`",
                bin.display()
            );
        }
    }

    let pairs = &lineup.pairs;
    let per_pair = lineup.rows() * if args.no_sweep { 1 } else { 2 };
    let multi = MultiProgress::new();
    let bar = multi.add(ProgressBar::new((3 + pairs.len() * (1 + per_pair)) as u64));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    set_bars(Some(multi.clone()));
    let result = measure_all(&args, &env, &lineup, &gemma3, &op_matrix, &multi, &bar);
    bar.finish_and_clear();
    set_bars(None);
    let mut report = result?;

    write_outputs(&mut report, &out)?;
    let ours_ok = report.runs.iter().all(|r| {
        r.engines
            .iter()
            .filter(|e| e.engine == OURS)
            .all(|e| e.metrics.is_some())
    });
    if !ours_ok {
        eprintln!("error: gemma3 failed on some checkpoint; see the table and target/bench/logs");
    }
    Ok(ours_ok)
}

/// Derives the ratios and writes report.json, the SVG, report.txt and report.md; prints the
/// tables.
fn write_outputs(report: &mut Report, out: &Path) -> Result<()> {
    report.derive();
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = out.join("decode_vs_context.svg");
    std::fs::write(&svg, report.svg()).with_context(|| format!("writing {}", svg.display()))?;
    let text = report.render_text();
    let txt = out.join("report.txt");
    std::fs::write(&txt, &text).with_context(|| format!("writing {}", txt.display()))?;
    let md = out.join("report.md");
    std::fs::write(&md, report.render_markdown())
        .with_context(|| format!("writing {}", md.display()))?;
    println!("{text}");
    println!(
        "wrote {}, {}, {} and {}",
        json.display(),
        svg.display(),
        txt.display(),
        md.display()
    );
    Ok(())
}

fn build_release(repo: &Path) -> Result<()> {
    eprintln!("building the release gemma3 and op-matrix");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo)
        .args(["build", "--release", "-p", "gemma3-cli", "-p", "op-matrix"])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("`cargo build --release -p gemma3-cli -p op-matrix` failed ({status}): fix the build, or run again once an edit in progress is saved (--no-build uses the binaries as they are)");
    }
    Ok(())
}

/// What a run measures: the checkpoints, and the variants of the engines that have them.
struct Lineup {
    pairs: Vec<(Model, Dtype)>,
    /// The kernel path of each row of ours (`None`: the one gemma3 picks).
    kernels: Vec<Option<KernelPath>>,
    /// llama.cpp's builds, each with a note for its rows.
    llama_builds: Vec<(LlamaBuild, Option<&'static str>)>,
}

impl Lineup {
    /// Rows per checkpoint.
    fn rows(&self) -> usize {
        self.kernels.len() + 1 + self.llama_builds.len()
    }
}

/// Whether llama.cpp's native build differs from its AVX2 one here.
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn measure_all(
    args: &Args,
    env: &Env,
    lineup: &Lineup,
    gemma3: &Path,
    op_matrix: &Path,
    multi: &MultiProgress,
    bar: &ProgressBar,
) -> Result<Report> {
    let load_start = load_average();
    bar.set_message("peers' setup");
    let (mut engines, tools) = engines(args, env, lineup, gemma3);
    bar.inc(1);

    env.sample_bandwidth(bar);
    bar.inc(1);
    bar.set_message("op-matrix --backend cpu");
    env.quiet.wait();
    let op_matrix = time_op_matrix(op_matrix, env);
    bar.inc(1);

    let mut runs = Vec::new();
    for &(model, dtype) in &lineup.pairs {
        let label = format!("{} {}", model.name(), dtype.name());
        bar.set_message(format!("{label}: checkpoint"));
        let ckpt_bar = multi.add(
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "  writing {label}: {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("a valid template")
                .with_key("label", {
                    let l = label.clone();
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&l);
                    }
                }),
            ),
        );
        let ckpt = checkpoints::ensure(
            &env.out.join("models"),
            &env.repo,
            model,
            dtype,
            args.seed,
            env.threads,
            &ckpt_bar,
        );
        ckpt_bar.finish_and_clear();
        multi.remove(&ckpt_bar);
        let mut ckpt = ckpt?;
        if dtype.llama_quant().is_some() {
            bar.set_message(format!("{label}: llama-quantize"));
            let tools = tools
                .as_ref()
                .map_err(|why| anyhow::anyhow!("{label} is made by llama.cpp's tools: {why}"))?;
            ckpt.gguf = Some(tools.quantized(&ckpt, env)?);
        }
        bar.inc(1);
        runs.push(measure_checkpoint(
            args,
            env,
            &ckpt,
            gemma3,
            &mut engines,
            bar,
        )?);
    }
    let bandwidth = report::Bandwidth::best_of(&env.bandwidth.borrow());
    let runs = runs
        .into_iter()
        .map(|(mut run, plan)| {
            (run.floor, run.sweep_floor) = plan.apply(bandwidth.read_gb_s);
            run
        })
        .collect();

    Ok(Report {
        created_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        commit: git_commit(&env.repo),
        machine: machine(),
        load_average: [load_start, load_average()],
        settings: report::Settings {
            threads: env.threads,
            prompt_tokens: args.prompt_tokens,
            new_tokens: args.new_tokens,
            contexts: args.contexts.clone(),
            sweep_new_tokens: args.sweep_new_tokens,
            runs: env.runs,
            seed: args.seed,
        },
        bandwidth,
        op_matrix,
        runs,
    })
}

/// The lineup's engines, a row each on every checkpoint: ours on each kernel path, then the
/// peers; and llama.cpp's tools, which make the quantized kinds' files (or why there are none).
fn engines(
    args: &Args,
    env: &Env,
    lineup: &Lineup,
    gemma3: &Path,
) -> (Vec<Box<dyn Engine>>, Result<llama_cpp::Tools, String>) {
    // The peers are set up before any measurement, as that needs no quiet machine; a failure
    // skips that peer everywhere, with the reason.
    let venv = if args.skip_peers {
        Err("--skip-peers".to_owned())
    } else {
        venv::ensure(env).map_err(|e| {
            tracing::warn!("no Python peers: {e:#}");
            format!("the Python venv could not be made: {}", first_line(&e))
        })
    };
    let mut engines: Vec<Box<dyn Engine>> = lineup
        .kernels
        .iter()
        .map(|&p| Box::new(Ours::new(gemma3, p)) as Box<dyn Engine>)
        .collect();
    engines.push(match &venv {
        Ok(v) => Box::new(Transformers::new(v.clone())),
        Err(reason) => Box::new(Unavailable {
            name: Transformers::NAME,
            variant: None,
            note: None,
            reason: reason.clone(),
        }),
    });
    let mut tools = Err("no llama.cpp build was asked for".to_owned());
    for &(build, note) in &lineup.llama_builds {
        if let Some(note) = note {
            tracing::info!("llama.cpp: {note}");
        }
        let llama = match &venv {
            Ok(v) => llama_cpp::ensure(env, v, build, note).map_err(|e| {
                tracing::warn!("no llama.cpp ({}): {e:#}", build.name());
                format!("llama.cpp could not be built: {}", first_line(&e))
            }),
            Err(reason) => Err(reason.clone()),
        };
        match llama {
            Ok(l) => {
                if tools.is_err() {
                    tools = Ok(l.tools().clone());
                }
                engines.push(Box::new(l));
            }
            Err(reason) => {
                if tools.is_err() {
                    tools = Err(reason.clone());
                }
                engines.push(Box::new(Unavailable {
                    name: LlamaCpp::NAME,
                    variant: Some(build.name().to_owned()),
                    note,
                    reason,
                }));
            }
        }
    }
    (engines, tools)
}

/// Every engine on one checkpoint: the main measurements in rounds, then the sweeps.
fn measure_checkpoint(
    args: &Args,
    env: &Env,
    ckpt: &Checkpoint,
    gemma3: &Path,
    engines: &mut [Box<dyn Engine>],
    bar: &ProgressBar,
) -> Result<(ModelRun, FloorPlan)> {
    let label = format!("{} {}", ckpt.model.name(), ckpt.dtype.name());
    let fits = |c: usize, n: usize| c + n <= ckpt.max_positions;
    if !fits(args.prompt_tokens, args.new_tokens) {
        bail!(
            "{label}: a {}-token prompt and {} new tokens exceed its {} positions",
            args.prompt_tokens,
            args.new_tokens,
            ckpt.max_positions
        );
    }
    let contexts: Vec<usize> = if args.no_sweep {
        Vec::new()
    } else {
        let (keep, drop): (Vec<usize>, Vec<usize>) = args
            .contexts
            .iter()
            .partition(|&&c| c >= 2 && fits(c, args.sweep_new_tokens));
        if !drop.is_empty() {
            tracing::info!(
                "{label}: contexts {drop:?} do not fit its {} positions; left out",
                ckpt.max_positions
            );
        }
        keep
    };
    let longest = contexts
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(args.prompt_tokens);
    let ids = checkpoints::prompt_ids(ckpt.vocab, longest, args.seed);
    let ids_file = env.out.join(format!("prompt-{}.json", ckpt.model.name()));
    std::fs::write(&ids_file, serde_json::to_string(&ids)?)
        .with_context(|| format!("writing {}", ids_file.display()))?;

    // The floors need the run's best bandwidth, known at the end: computed then, from this.
    let mean_context = |c: usize, n: usize| c + n / 2;
    let plan = FloorPlan {
        weight_bytes: ckpt.weight_bytes(),
        kv: ckpt.kv.clone(),
        elem: ckpt.dtype.bytes(),
        main: mean_context(args.prompt_tokens, args.new_tokens),
        sweep: contexts
            .iter()
            .map(|&c| (c, mean_context(c, args.sweep_new_tokens)))
            .collect(),
    };

    let bench = CheckpointBench {
        args,
        env,
        ckpt,
        ids: &ids,
        ids_file: &ids_file,
        contexts: &contexts,
        label: &label,
    };

    // Each engine readied for this checkpoint, or its row without numbers.
    let mut rows: Vec<Option<EngineRun>> = engines
        .iter_mut()
        .map(|engine| match engine.prepare(&bench) {
            Ok(()) => None,
            Err(NotReady::Skipped(reason)) => Some(EngineRun::skipped(engine.name(), reason)),
            Err(NotReady::Failed(e)) => Some(failed(
                engine.name(),
                &format!("{label}: {}", engine.label()),
                &e,
            )),
        })
        .collect();

    // Phase 1, the main measurements, in rounds of every engine once: the host's memory
    // bandwidth drifts (other tenants) by a third within minutes, and an engine measured
    // `runs` times in a row can land in a slow stretch that another missed. Each engine keeps
    // its best, and its floor uses the bandwidth sampled just before and after its runs.
    let mut tokens: Vec<Option<Vec<u32>>> = vec![None; engines.len()];
    let mut before = env.sample_bandwidth(bar);
    ours::warm_up(gemma3, &bench);
    for round in 1..=env.runs {
        for ((engine, row), tokens) in engines.iter_mut().zip(&mut rows).zip(&mut tokens) {
            if row.as_ref().is_some_and(|r| r.metrics.is_none()) {
                continue;
            }
            bar.set_message(format!(
                "{label}: {} ({round} of {})",
                engine.label(),
                env.runs
            ));
            let (mut run, ran) = measure_once(engine.as_mut(), &bench);
            if run.metrics.is_some() {
                let after = env.sample_bandwidth(bar);
                run.read_gb_s = Some(before.max(after));
                before = after;
            }
            *tokens = tokens.take().or(ran);
            *row = Some(match row.take() {
                Some(best) => best.best_of_two(run),
                None => run,
            });
        }
    }
    // The first row of ours that measured: its name and greedy tokens, held against the rest.
    let mut reference: Option<(String, Vec<u32>)> = None;
    let mut done = Vec::new();
    for ((engine, run), tokens) in engines.iter().zip(rows).zip(tokens) {
        let mut run = run.expect("every engine ran at least once");
        run.variant = run.variant.or(engine.variant());
        run.notes.extend(engine.note().map(String::from));
        match (&reference, tokens) {
            (Some((ours, want)), Some(tokens)) => run.notes.push(agreement(ours, want, &tokens)),
            (None, Some(tokens)) if run.engine == OURS => reference = Some((run.label(), tokens)),
            _ => {}
        }
        done.push(run);
        bar.inc(1);
    }
    let mut rows = done;

    // Phase 2, decode against context, for each engine that measured.
    if !contexts.is_empty() {
        for (engine, run) in engines.iter_mut().zip(&mut rows) {
            if run.metrics.is_some() {
                bar.set_message(format!("{label}: {} sweep", run.label()));
                match engine.sweep(&bench) {
                    Ok(points) => run.sweep = points,
                    Err(e) => {
                        tracing::warn!("{label}: {} sweep: {e:#}", run.label());
                        run.notes.push(format!("sweep failed: {}", first_line(&e)));
                    }
                }
            }
            bar.inc(1);
        }
    }

    let (floor, sweep_floor) = plan.apply(0.0);
    let (checkpoint, checkpoint_bytes) = match &ckpt.gguf {
        Some(g) => (&g.file, g.bytes),
        None => (&ckpt.dir, ckpt.file_bytes),
    };
    Ok((
        ModelRun {
            model: ckpt.model.name().into(),
            dtype: ckpt.dtype.name().into(),
            checkpoint: checkpoint.display().to_string(),
            params: ckpt.params,
            checkpoint_bytes,
            bandwidth_bound: ckpt.weight_bytes() > 4 * last_level_cache_bytes(),
            floor,
            sweep_floor,
            engines: rows,
        },
        plan,
    ))
}

/// One main measurement of `engine` on a quiet machine, as its row, with its greedy tokens
/// where it reports them.
fn measure_once(engine: &mut dyn Engine, bench: &CheckpointBench) -> (EngineRun, Option<Vec<u32>>) {
    let what = format!("{}: {}", bench.label, engine.label());
    let quiet = &bench.env.quiet;
    let measured = quiet.measure(&what, || engine.measure(bench), |m| m.metrics.others_cores);
    match measured {
        Ok(m) => {
            let said = summary(&m.metrics);
            let mut run = EngineRun::measured(engine.name(), m.version, m.metrics);
            run.variant = m.variant.or(engine.variant());
            run.notes = m.notes;
            tracing::info!("{}: {} {said}", bench.label, run.label());
            (run, m.tokens)
        }
        Err(e) => (failed(engine.name(), &what, &e), None),
    }
}

/// What a checkpoint's floors depend on besides the bandwidth.
struct FloorPlan {
    weight_bytes: u64,
    kv: report::KvShape,
    elem: u64,
    /// Mean context of the main measurement's decode.
    main: usize,
    /// (sweep context, mean context of its decode).
    sweep: Vec<(usize, usize)>,
}

impl FloorPlan {
    fn apply(&self, read_gb_s: f64) -> (report::Floor, Vec<Point>) {
        let floor = |c| report::floor(self.weight_bytes, &self.kv, self.elem, c, read_gb_s);
        let sweep = self
            .sweep
            .iter()
            .map(|&(context, mean)| Point {
                context,
                decode_tok_s: floor(mean).tok_s,
            })
            .collect();
        (floor(self.main), sweep)
    }
}

/// A failed row of `engine`; `what` names the measurement in the log.
fn failed(engine: &str, what: &str, e: &anyhow::Error) -> EngineRun {
    tracing::warn!("{what} failed: {e:#}");
    EngineRun::failed(engine, first_line(e))
}

fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn summary(m: &Metrics) -> String {
    format!(
        "prefill {:.1} tok/s, decode {:.2} tok/s",
        m.prefill_tok_s, m.decode_tok_s
    )
}

/// How many greedy tokens an engine produced identically to ours (the row named `ours`),
/// from the start.
fn agreement(ours: &str, want: &[u32], theirs: &[u32]) -> String {
    let same = want.iter().zip(theirs).take_while(|(a, b)| a == b).count();
    let n = want.len().min(theirs.len());
    format!("greedy tokens equal to {ours}'s: {same} of {n}")
}

fn time_op_matrix(bin: &Path, env: &Env) -> Option<report::OpMatrix> {
    let started = std::time::Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(["--backend", "cpu"]);
    let log = process::log_path(&env.logs, "op-matrix");
    match process::run(&mut cmd, "op-matrix --backend cpu", &log, "see the log") {
        Ok(done) => Some(report::OpMatrix {
            wall_s: done.wall.as_secs_f64(),
            passed: true,
            summary: done
                .stdout
                .lines()
                .find(|l| l.starts_with("executed"))
                .unwrap_or("")
                .to_owned(),
        }),
        Err(e) => {
            tracing::warn!("{e:#}");
            // The matrix's own summary and first failure, from the log.
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let executed = text.lines().find(|l| l.starts_with("executed"));
            let first = text.lines().find(|l| l.starts_with("FAIL"));
            let summary = match (executed, first) {
                (Some(x), Some(f)) => {
                    format!("{x}; first: {}", f.chars().take(120).collect::<String>())
                }
                (Some(x), None) => x.to_owned(),
                _ => first_line(&e),
            };
            Some(report::OpMatrix {
                wall_s: started.elapsed().as_secs_f64(),
                passed: false,
                summary,
            })
        }
    }
}

fn git_commit(repo: &Path) -> Option<String> {
    let out = Command::new("git")
        .current_dir(repo)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let head = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    let dirty = Command::new("git")
        .current_dir(repo)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    (!head.is_empty()).then(|| if dirty { format!("{head}-dirty") } else { head })
}

/// The largest CPU cache, from sysfs (32 MiB where unreadable).
fn last_level_cache_bytes() -> u64 {
    let parse = |t: &str| {
        let t = t.trim();
        let (n, mult) = match t.chars().last() {
            Some('K') => (&t[..t.len() - 1], 1u64 << 10),
            Some('M') => (&t[..t.len() - 1], 1 << 20),
            Some('G') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        n.parse::<u64>().ok().map(|n| n * mult)
    };
    (0..8)
        .filter_map(|i| {
            std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index{i}/size"))
                .ok()
        })
        .filter_map(|t| parse(&t))
        .max()
        .unwrap_or(32 << 20)
}

/// The 1-minute load average, from /proc/loadavg (0 where unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// CPU model, cores, the SIMD flags that matter here, and memory, from /proc.
fn machine() -> report::Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let flags = field("flags").unwrap_or_default();
    let interesting = [
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_bf16",
        "amx_tile",
    ];
    let have: Vec<String> = interesting
        .iter()
        .filter(|f| flags.split_whitespace().any(|x| x == **f))
        .map(|f| f.to_string())
        .collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    report::Machine {
        cpu: field("model name").unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        flags: have,
        cpu_kernels: KernelPath::supported()
            .iter()
            .map(|p| p.name().to_owned())
            .collect(),
        memory_gib: kib / (1u64 << 20) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(prefill_tok_s: f64, decode_tok_s: f64) -> Metrics {
        Metrics {
            prompt_tokens: 128,
            generated_tokens: 64,
            prefill_tok_s,
            decode_tok_s,
            ..Default::default()
        }
    }

    #[test]
    fn rounds_keep_each_engines_best_and_its_first_error() {
        let row = |prefill, decode, gb_s| {
            let mut r = EngineRun::measured(OURS, None, metrics(prefill, decode));
            r.read_gb_s = Some(gb_s);
            r
        };
        let best = row(150.0, 14.0, 40.0).best_of_two(row(190.0, 13.0, 35.0));
        let metrics = best.metrics.as_ref().unwrap();
        assert_eq!((metrics.prefill_tok_s, metrics.decode_tok_s), (190.0, 14.0));
        assert_eq!(best.read_gb_s, Some(40.0));
        let failed = best.best_of_two(EngineRun::failed(OURS, "out of memory"));
        assert!(failed.metrics.is_none());
        assert!(matches!(failed.outcome, report::Outcome::Failed { .. }));
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(line: &[&str]) -> Args {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("bench").chain(line.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn by_default_one_row_of_ours_as_it_picks_and_llama_cpp_built_for_this_cpu() {
        let a = parse(&[]);
        assert_eq!(a.cpu_kernels, ours::CpuKernels::Best);
        assert_eq!(a.llama_builds, [LlamaBuild::Native]);
        let a = parse(&["--cpu-kernels", "all", "--llama-builds", "native,avx2"]);
        assert_eq!(a.cpu_kernels, ours::CpuKernels::All);
        assert_eq!(a.llama_builds, [LlamaBuild::Native, LlamaBuild::Avx2]);
        let a = parse(&["--cpu-kernels", "avx2,portable"]);
        assert_eq!(
            a.cpu_kernels,
            ours::CpuKernels::List(vec![KernelPath::Avx2, KernelPath::Portable])
        );
        use clap::Parser;
        assert!(Cli::try_parse_from(["bench", "--cpu-kernels", "sse"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--llama-builds", "avx512"]).is_err());
    }

    #[test]
    fn each_row_is_named_by_its_engine_and_the_variant_asked_for() {
        let bin = Path::new("gemma3");
        assert_eq!(Ours::new(bin, None).label(), "gemma3");
        assert_eq!(
            Ours::new(bin, Some(KernelPath::Avx2)).label(),
            "gemma3 (avx2)"
        );
        let venv = venv::Venv {
            dir: "venv".into(),
            python: "venv/bin/python".into(),
        };
        assert_eq!(Transformers::new(venv).label(), "transformers");
        let llama = Unavailable {
            name: LlamaCpp::NAME,
            variant: Some(LlamaBuild::Avx2.name().into()),
            note: Some("a note"),
            reason: "--skip-peers".into(),
        };
        assert_eq!(llama.label(), "llama.cpp (avx2)");
        assert_eq!(llama.note(), Some("a note"));
        let lineup = Lineup {
            pairs: vec![(Model::Tiny, Dtype::F32)],
            kernels: vec![Some(KernelPath::Avx2), Some(KernelPath::Portable)],
            llama_builds: vec![(LlamaBuild::Native, None), (LlamaBuild::Avx2, None)],
        };
        assert_eq!(lineup.rows(), 5);
    }

    #[test]
    fn agreement_counts_equal_tokens_from_the_start() {
        assert_eq!(
            agreement("gemma3 (avx512)", &[1, 2, 3, 4], &[1, 2, 9]),
            "greedy tokens equal to gemma3 (avx512)'s: 2 of 3"
        );
    }
}
