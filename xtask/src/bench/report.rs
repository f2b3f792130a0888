//! What `cargo xtask bench` measured, the floor it derives from the memory bandwidth, and the
//! three renderings: the terminal tables, `report.json` and the decode-vs-context SVG.

use std::fmt::Write as _;

use comfy_table::presets::{ASCII_FULL_CONDENSED, ASCII_MARKDOWN};
use comfy_table::{Cell, CellAlignment, Table};
use serde::{Deserialize, Serialize};

/// The engine this workspace builds; every ratio is ours over a peer's.
pub const OURS: &str = "gemma3";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub created_unix_s: u64,
    pub commit: Option<String>,
    pub machine: Machine,
    /// The 1-minute load average before and after the run: other processes on the machine
    /// compete for its cores, and every number is noisier when this is not near 0.
    pub load_average: [f64; 2],
    pub settings: Settings,
    pub bandwidth: Bandwidth,
    pub op_matrix: Option<OpMatrix>,
    pub runs: Vec<ModelRun>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// The SIMD flags that matter to these kernels, as `/proc/cpuinfo` spells them.
    pub flags: Vec<String>,
    /// Our CPU kernel paths this CPU can run, best first.
    #[serde(default)]
    pub cpu_kernels: Vec<String>,
    pub memory_gib: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub threads: usize,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub contexts: Vec<usize>,
    pub sweep_new_tokens: usize,
    pub runs: usize,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Bandwidth {
    /// Bytes read per second by a sum over the buffer, in GB/s (1e9): the floor's bandwidth,
    /// because decoding reads the weights and writes almost nothing.
    pub read_gb_s: f64,
    /// Bytes copied per second by memcpy (each byte read once and written once), in GB/s.
    pub copy_gb_s: f64,
    pub buffer_bytes: u64,
    pub threads: usize,
    pub repeats: usize,
    /// The read figure of every sample taken during the run (the best is used).
    pub samples_read_gb_s: Vec<f64>,
}

impl Bandwidth {
    /// The sample with the best read bandwidth, with every sample's read figure kept.
    pub fn best_of(samples: &[Bandwidth]) -> Bandwidth {
        let mut best = samples
            .iter()
            .max_by(|a, b| a.read_gb_s.total_cmp(&b.read_gb_s))
            .cloned()
            .unwrap_or(Bandwidth {
                read_gb_s: f64::NAN,
                copy_gb_s: f64::NAN,
                buffer_bytes: 0,
                threads: 0,
                repeats: 0,
                samples_read_gb_s: Vec::new(),
            });
        best.samples_read_gb_s = samples.iter().map(|s| s.read_gb_s).collect();
        best
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpMatrix {
    pub wall_s: f64,
    pub passed: bool,
    /// The matrix's own summary line.
    pub summary: String,
}

/// One checkpoint in one dtype: the floor and every engine on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelRun {
    pub model: String,
    pub dtype: String,
    pub checkpoint: String,
    pub params: u64,
    pub checkpoint_bytes: u64,
    /// False when the weights fit in the CPU's caches: then memory bandwidth does not bound
    /// decoding, and the floor is shown for reference only (no ratios, no plot line).
    #[serde(default = "yes")]
    pub bandwidth_bound: bool,
    /// Decode floor at the main measurement's mean context.
    pub floor: Floor,
    /// Decode floor at each context of the sweep.
    pub sweep_floor: Vec<Point>,
    pub engines: Vec<EngineRun>,
}

impl ModelRun {
    /// The row of ours that row `i` is compared with: for a peer, ours on the same variant
    /// where there is one (`llama.cpp (avx2)` with `gemma3 (avx2)`), else the first row of
    /// ours; none for that first row itself.
    pub fn reference(&self, i: usize) -> Option<usize> {
        let e = &self.engines[i];
        let first = self.engines.iter().position(|o| o.engine == OURS)?;
        let same = self.engines.iter().position(|o| {
            o.engine == OURS && e.engine != OURS && e.variant.is_some() && o.variant == e.variant
        });
        let r = same.unwrap_or(first);
        (r != i).then_some(r)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Floor {
    /// Mean context over the decoded tokens.
    pub context: usize,
    pub weight_bytes: u64,
    pub kv_bytes: u64,
    pub tok_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    pub context: usize,
    pub decode_tok_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Measured,
    Skipped { reason: String },
    Failed { error: String },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EngineRun {
    pub engine: String,
    /// Which of the engine's kinds ran: ours, the CPU kernel path its stats name; llama.cpp,
    /// its build (`native`, `avx2`).
    #[serde(default)]
    pub variant: Option<String>,
    pub version: Option<String>,
    pub outcome: Outcome,
    pub metrics: Option<Metrics>,
    pub sweep: Vec<Point>,
    /// What a reader needs to know to trust the numbers (how a value was derived, warnings).
    pub notes: Vec<String>,
    /// Ours over this engine, prefill and decode; absent for ours.
    pub ours_over_this: Option<Ratios>,
    /// Read bandwidth sampled around this engine's main measurement (the best of the samples
    /// just before and just after it), in GB/s: its floor uses this.
    #[serde(default)]
    pub read_gb_s: Option<f64>,
    /// This engine's decode over the floor at that bandwidth.
    pub decode_over_floor: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub ttft_ms: Option<f64>,
    pub load_s: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub preflight_ms: Option<f64>,
    /// Cores that other processes kept busy meanwhile (see the table's "other load").
    #[serde(default)]
    pub others_cores: Option<f64>,
}

impl Metrics {
    /// The better of two runs metric by metric, as llama-bench reports the best sample of each
    /// test: the run with the faster decode, with the faster prefill (and its time to first
    /// token) of the two.
    pub fn best(&self, other: &Metrics) -> Metrics {
        let mut best = if other.decode_tok_s > self.decode_tok_s {
            other.clone()
        } else {
            self.clone()
        };
        let prefill = if other.prefill_tok_s > self.prefill_tok_s {
            other
        } else {
            self
        };
        best.prefill_tok_s = prefill.prefill_tok_s;
        best.ttft_ms = prefill.ttft_ms;
        best
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ratios {
    /// The row of ours these are taken from: on the same variant where there is one (the avx2
    /// kernels against llama.cpp's avx2 build), else the first.
    #[serde(default)]
    pub ours: String,
    pub prefill: Option<f64>,
    pub decode: Option<f64>,
}

/// A row's name: `gemma3 (avx512)`, `llama.cpp (native)`, `transformers`.
pub fn label(engine: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{engine} ({v})"),
        None => engine.to_owned(),
    }
}

impl EngineRun {
    pub fn measured(engine: &str, version: Option<String>, metrics: Metrics) -> Self {
        EngineRun {
            engine: engine.to_owned(),
            variant: None,
            version,
            outcome: Outcome::Measured,
            metrics: Some(metrics),
            sweep: Vec::new(),
            notes: Vec::new(),
            ours_over_this: None,
            read_gb_s: None,
            decode_over_floor: None,
        }
    }

    pub fn skipped(engine: &str, reason: impl Into<String>) -> Self {
        Self::without_numbers(
            engine,
            Outcome::Skipped {
                reason: reason.into(),
            },
        )
    }

    pub fn failed(engine: &str, error: impl Into<String>) -> Self {
        Self::without_numbers(
            engine,
            Outcome::Failed {
                error: error.into(),
            },
        )
    }

    /// Two measurements of one engine as one row: the metrics of [`Metrics::best`], the higher
    /// bandwidth sample. A row without numbers (failed or skipped) wins, so that no error is
    /// hidden behind an earlier success.
    pub fn best_of_two(mut self, other: EngineRun) -> EngineRun {
        let (Some(a), Some(b)) = (&self.metrics, &other.metrics) else {
            return other;
        };
        self.metrics = Some(a.best(b));
        self.read_gb_s = match (self.read_gb_s, other.read_gb_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self
    }

    /// The row's name (see [`label`]).
    pub fn label(&self) -> String {
        label(&self.engine, self.variant.as_deref())
    }

    fn without_numbers(engine: &str, outcome: Outcome) -> Self {
        EngineRun {
            engine: engine.to_owned(),
            variant: None,
            version: None,
            outcome,
            metrics: None,
            sweep: Vec::new(),
            notes: Vec::new(),
            ours_over_this: None,
            read_gb_s: None,
            decode_over_floor: None,
        }
    }
}

/// The KV cache's shape, which decides how many cache bytes one decode step reads.
#[derive(Clone, Debug, PartialEq)]
pub struct KvShape {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub sliding_window: usize,
    /// One entry per layer: true for a global (full-context) layer.
    pub global: Vec<bool>,
}

impl KvShape {
    /// Gemma 3's layer pattern: every `pattern`-th layer is global, the rest slide.
    pub fn gemma3(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        window: usize,
        pattern: usize,
    ) -> Self {
        KvShape {
            kv_heads,
            head_dim,
            sliding_window: window,
            global: (0..layers).map(|i| (i + 1) % pattern.max(1) == 0).collect(),
        }
    }

    /// Bytes of keys and values one decode step reads at `context` positions: every position
    /// on a global layer, at most the window on a sliding one.
    pub fn bytes_read(&self, context: usize, elem_bytes: u64) -> u64 {
        let per_position = 2 * (self.kv_heads * self.head_dim) as u64 * elem_bytes;
        self.global
            .iter()
            .map(|&g| {
                let seen = if g {
                    context
                } else {
                    context.min(self.sliding_window)
                };
                seen as u64 * per_position
            })
            .sum()
    }
}

/// The decode floor: one step reads every weight once (the tied LM head included, in full)
/// and the KV cache at that context, so tokens/s cannot beat bandwidth / those bytes.
pub fn floor(
    weight_bytes: u64,
    kv: &KvShape,
    elem_bytes: u64,
    context: usize,
    read_gb_s: f64,
) -> Floor {
    let kv_bytes = kv.bytes_read(context, elem_bytes);
    Floor {
        context,
        weight_bytes,
        kv_bytes,
        tok_s: read_gb_s * 1e9 / (weight_bytes + kv_bytes) as f64,
    }
}

fn yes() -> bool {
    true
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

impl Report {
    /// Fills in the ratios: each engine against ours (see [`ModelRun::reference`]), each
    /// engine against the floor.
    pub fn derive(&mut self) {
        for run in &mut self.runs {
            let references: Vec<Option<(String, Metrics)>> = (0..run.engines.len())
                .map(|i| {
                    let r = &run.engines[run.reference(i)?];
                    Some((r.label(), r.metrics.clone()?))
                })
                .collect();
            let bytes = (run.floor.weight_bytes + run.floor.kv_bytes) as f64;
            for (e, ours) in run.engines.iter_mut().zip(references) {
                let Some(m) = &e.metrics else {
                    e.ours_over_this = None;
                    e.decode_over_floor = None;
                    continue;
                };
                let floor = match e.read_gb_s {
                    Some(bw) => bw * 1e9 / bytes,
                    None => run.floor.tok_s,
                };
                e.decode_over_floor = ratio(m.decode_tok_s, floor).filter(|_| run.bandwidth_bound);
                e.ours_over_this = ours.map(|(label, o)| Ratios {
                    ours: label,
                    prefill: ratio(o.prefill_tok_s, m.prefill_tok_s),
                    decode: ratio(o.decode_tok_s, m.decode_tok_s),
                });
            }
        }
    }

    /// The lines above the table: machine, bandwidth, op-matrix.
    pub fn preamble(&self) -> String {
        let m = &self.machine;
        let b = &self.bandwidth;
        let mut s = format!(
            "machine: {}, {} cores, {:.0} GiB, flags: {}",
            m.cpu,
            m.cores,
            m.memory_gib,
            m.flags.join(" ")
        );
        // Which kind of x86 CPU it is: the flags our avx2 and avx512 paths hinge on.
        let lacks: Vec<&str> = ["avx2", "avx512_bf16"]
            .into_iter()
            .filter(|f| !m.flags.iter().any(|x| x == f))
            .collect();
        if !m.flags.is_empty() && !lacks.is_empty() {
            let _ = write!(s, " (no {})", lacks.join(", no "));
        }
        if !m.cpu_kernels.is_empty() {
            let _ = write!(s, "; our CPU kernels here: {}", m.cpu_kernels.join(", "));
        }
        s.push('\n');
        let _ = writeln!(
            s,
            "load average (1 min) {:.2} at the start, {:.2} at the end",
            self.load_average[0], self.load_average[1]
        );
        let samples: Vec<String> = b
            .samples_read_gb_s
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect();
        let _ = writeln!(
            s,
            "memory bandwidth ({} threads, {} MiB, best of {} repeats; samples over the run [{}]): best read {:.1} GB/s, memcpy {:.1} GB/s; each engine's floor uses the samples around its measurement (B/W), the floor rows the best",
            b.threads,
            b.buffer_bytes >> 20,
            b.repeats,
            samples.join(", "),
            b.read_gb_s,
            b.copy_gb_s
        );
        if let Some(om) = &self.op_matrix {
            let _ = writeln!(
                s,
                "op-matrix --backend cpu: {:.2} s wall, {} ({})",
                om.wall_s,
                if om.passed { "passed" } else { "FAILED" },
                om.summary
            );
        }
        let _ = writeln!(
            s,
            "other load: cores that other processes kept busy during a measurement (near 0 on a quiet machine; near 1 or more, that row is slowed by them)"
        );
        let st = &self.settings;
        let _ = writeln!(
            s,
            "prompt {} tokens, {} new tokens (greedy), {} threads, best of {} run(s)",
            st.prompt_tokens, st.new_tokens, st.threads, st.runs
        );
        s
    }

    /// The main table: one row per engine per checkpoint and dtype, then the floor.
    pub fn table(&self, preset: &str) -> Table {
        let mut t = Table::new();
        t.load_preset(preset);
        t.set_header(vec![
            "model",
            "dtype",
            "engine",
            "prefill tok/s",
            "decode tok/s",
            "TTFT ms",
            "load s",
            "peak RSS MiB",
            "preflight ms",
            "other load",
            "B/W GB/s",
            "decode ÷ floor",
            "ours ÷ this (prefill, decode)",
            "note",
        ]);
        for run in &self.runs {
            let several = run.engines.iter().filter(|e| e.engine == OURS).count() > 1;
            for e in &run.engines {
                let m = e.metrics.as_ref();
                let note = match &e.outcome {
                    Outcome::Measured => e.notes.join("; "),
                    Outcome::Skipped { reason } => format!("skipped: {reason}"),
                    Outcome::Failed { error } => format!("FAILED: {error}"),
                };
                let engine = match &e.version {
                    Some(v) => format!("{} {v}", e.label()),
                    None => e.label(),
                };
                t.add_row(vec![
                    Cell::new(&run.model),
                    Cell::new(&run.dtype),
                    Cell::new(engine),
                    num(m.map(|m| m.prefill_tok_s), 1),
                    num(m.map(|m| m.decode_tok_s), 2),
                    num(m.and_then(|m| m.ttft_ms), 1),
                    num(m.and_then(|m| m.load_s), 2),
                    num(
                        m.and_then(|m| m.peak_rss_bytes)
                            .map(|b| b as f64 / (1u64 << 20) as f64),
                        0,
                    ),
                    num(m.and_then(|m| m.preflight_ms), 1),
                    num(m.and_then(|m| m.others_cores), 2),
                    num(e.read_gb_s, 1),
                    times(e.decode_over_floor),
                    Cell::new(match &e.ours_over_this {
                        Some(r) if several => format!(
                            "{} {} ({})",
                            times_str(r.prefill),
                            times_str(r.decode),
                            r.ours
                        ),
                        Some(r) => format!("{} {}", times_str(r.prefill), times_str(r.decode)),
                        None => "-".into(),
                    })
                    .set_alignment(CellAlignment::Right),
                    Cell::new(note),
                ]);
            }
            let f = &run.floor;
            t.add_row(vec![
                Cell::new(&run.model),
                Cell::new(&run.dtype),
                Cell::new("floor (bandwidth)"),
                Cell::new("-").set_alignment(CellAlignment::Right),
                num(Some(f.tok_s), 2),
                Cell::new("-").set_alignment(CellAlignment::Right),
                Cell::new("-").set_alignment(CellAlignment::Right),
                num(Some(run.checkpoint_bytes as f64 / (1u64 << 20) as f64), 0),
                Cell::new("-").set_alignment(CellAlignment::Right),
                Cell::new("-").set_alignment(CellAlignment::Right),
                num(Some(self.bandwidth.read_gb_s), 1),
                times(Some(1.0).filter(|_| run.bandwidth_bound)),
                Cell::new("-").set_alignment(CellAlignment::Right),
                Cell::new(format!(
                    "{:.3} GB/token ({:.4} of KV at context {}); RSS: checkpoint size{}",
                    (f.weight_bytes + f.kv_bytes) as f64 / 1e9,
                    f.kv_bytes as f64 / 1e9,
                    f.context,
                    if run.bandwidth_bound {
                        ""
                    } else {
                        "; the weights fit in the CPU caches: no memory-bandwidth bound"
                    }
                )),
            ]);
        }
        t
    }

    /// Every context of any sweep, in order.
    fn contexts(&self) -> Vec<usize> {
        let mut c: Vec<usize> = self
            .runs
            .iter()
            .flat_map(|r| {
                r.engines
                    .iter()
                    .flat_map(|e| e.sweep.iter().map(|p| p.context))
            })
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Decode tokens/s against context: one row per engine, and the floor.
    pub fn sweep_table(&self, preset: &str) -> Option<Table> {
        let contexts = self.contexts();
        if contexts.is_empty() {
            return None;
        }
        let mut t = Table::new();
        t.load_preset(preset);
        let mut header = vec!["model".to_string(), "dtype".into(), "decode tok/s".into()];
        header.extend(contexts.iter().map(|c| format!("ctx {c}")));
        t.set_header(header);
        let at = |points: &[Point], c: usize| {
            num(
                points
                    .iter()
                    .find(|p| p.context == c)
                    .map(|p| p.decode_tok_s),
                2,
            )
        };
        for run in &self.runs {
            let rows = run
                .engines
                .iter()
                .filter(|e| !e.sweep.is_empty())
                .map(|e| (e.label(), &e.sweep));
            let floor = ("floor".to_owned(), &run.sweep_floor);
            for (name, points) in rows.chain(std::iter::once(floor)) {
                let mut row = vec![
                    Cell::new(&run.model),
                    Cell::new(&run.dtype),
                    Cell::new(name),
                ];
                row.extend(contexts.iter().map(|&c| at(points, c)));
                t.add_row(row);
            }
        }
        Some(t)
    }

    /// Everything printed at the end of a run.
    pub fn render_text(&self) -> String {
        let mut s = self.preamble();
        let _ = writeln!(s, "{}", self.table(ASCII_FULL_CONDENSED));
        if let Some(t) = self.sweep_table(ASCII_FULL_CONDENSED) {
            let _ = writeln!(s, "{t}");
        }
        s
    }

    /// The same as Markdown, for documentation.
    pub fn render_markdown(&self) -> String {
        let mut s: String = self
            .preamble()
            .lines()
            .map(|l| {
                format!(
                    "- {l}
"
                )
            })
            .collect();
        if let Some(c) = &self.commit {
            let _ = writeln!(s, "- commit {c}");
        }
        let _ = writeln!(
            s,
            "
{}",
            self.table(ASCII_MARKDOWN)
        );
        if let Some(t) = self.sweep_table(ASCII_MARKDOWN) {
            let _ = writeln!(
                s,
                "
Decode tokens/s against context:

{t}"
            );
        }
        s
    }

    /// Decode tokens/s against context length, one panel per model, as a standalone SVG.
    pub fn svg(&self) -> String {
        let mut models: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
        }
        let (pw, ph) = (560.0, 380.0);
        let width = pw * models.len().max(1) as f64;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{ph}\" viewBox=\"0 0 {width} {ph}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        for (i, model) in models.iter().enumerate() {
            let runs: Vec<&ModelRun> = self.runs.iter().filter(|r| r.model == *model).collect();
            panel(&mut s, i as f64 * pw, pw, ph, model, &runs);
        }
        s.push_str("</svg>\n");
        s
    }
}

fn num(v: Option<f64>, decimals: usize) -> Cell {
    let text = match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "-".into(),
    };
    Cell::new(text).set_alignment(CellAlignment::Right)
}

fn times_str(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.2}x"),
        _ => "-".into(),
    }
}

fn times(v: Option<f64>) -> Cell {
    Cell::new(times_str(v)).set_alignment(CellAlignment::Right)
}

/// An engine's colour, a shade of it for its `nth` variant.
fn color(engine: &str, nth: usize) -> &'static str {
    let shades: &[&str] = match engine {
        OURS => &["#d62728", "#ff7f0e", "#8c564b"],
        "transformers" => &["#1f77b4"],
        "llama.cpp" => &["#2ca02c", "#17becf", "#bcbd22"],
        _ => &["#9467bd"],
    };
    shades[nth % shades.len()]
}

fn dash(dtype: &str) -> &'static str {
    if dtype == "f32" {
        " stroke-dasharray=\"7 4\""
    } else {
        ""
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum and tick step covering `max`.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn panel(s: &mut String, x0: f64, w: f64, h: f64, model: &str, runs: &[&ModelRun]) {
    // Series: (label, color, dash, points); an engine's variants in the order first seen.
    let mut series: Vec<(String, &str, &str, &[Point])> = Vec::new();
    let mut variants: Vec<(&str, Option<&str>)> = Vec::new();
    for run in runs {
        for e in run.engines.iter().filter(|e| !e.sweep.is_empty()) {
            let key = (e.engine.as_str(), e.variant.as_deref());
            if !variants.contains(&key) {
                variants.push(key);
            }
            let nth = variants
                .iter()
                .filter(|(engine, _)| *engine == key.0)
                .position(|&k| k == key)
                .unwrap_or(0);
            series.push((
                format!("{} {}", e.label(), run.dtype),
                color(&e.engine, nth),
                dash(&run.dtype),
                &e.sweep,
            ));
        }
        if run.bandwidth_bound && !run.sweep_floor.is_empty() {
            series.push((
                format!("floor {}", run.dtype),
                "#7f7f7f",
                dash(&run.dtype),
                &run.sweep_floor,
            ));
        }
    }
    // The legend's column fits the longest label (about 7 px a character).
    let longest = series.iter().map(|(l, _, _, _)| l.chars().count()).max();
    let legend = (50.0 + 7.0 * longest.unwrap_or(0) as f64).max(150.0);
    let (left, right, top, bottom) = (x0 + 64.0, x0 + w - legend, 36.0, h - 48.0);
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Gemma 3 {}: decode tokens/s against context</text>",
        x0 + 16.0,
        escape(model)
    );
    let points = series.iter().flat_map(|(_, _, _, p)| p.iter());
    let (mut cmin, mut cmax, mut ymax) = (usize::MAX, 0usize, 0f64);
    for p in points {
        cmin = cmin.min(p.context.max(1));
        cmax = cmax.max(p.context.max(1));
        if p.decode_tok_s.is_finite() {
            ymax = ymax.max(p.decode_tok_s);
        }
    }
    if cmax == 0 {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">no sweep measured</text>",
            left,
            (top + bottom) / 2.0
        );
        return;
    }
    let (lmin, mut lmax) = ((cmin as f64).log2(), (cmax as f64).log2());
    if lmax - lmin < 1e-9 {
        lmax = lmin + 1.0;
    }
    let (ytop, ystep) = nice_axis(ymax);
    let px = |c: usize| left + ((c.max(1) as f64).log2() - lmin) / (lmax - lmin) * (right - left);
    let py = |v: f64| bottom - v.max(0.0) / ytop * (bottom - top);
    // Axes, grid and ticks.
    let _ = writeln!(
        s,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#333\"/>",
        right - left,
        bottom - top
    );
    let mut v = 0.0;
    while v <= ytop + ystep * 1e-6 {
        let y = py(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left:.1}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 4.0,
            trim_number(v)
        );
        v += ystep;
    }
    let mut ticks: Vec<usize> = series
        .iter()
        .flat_map(|(_, _, _, p)| p.iter().map(|p| p.context))
        .collect();
    ticks.sort_unstable();
    ticks.dedup();
    for c in ticks {
        let x = px(c);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{c}</text>",
            bottom + 5.0,
            bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">context (tokens before the decoded ones, log scale)</text>",
        (left + right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate({:.1},{:.1}) rotate(-90)\" text-anchor=\"middle\">decode tokens/s</text>",
        x0 + 16.0,
        (top + bottom) / 2.0
    );
    // Lines and the legend.
    for (i, (label, col, dash, pts)) in series.iter().enumerate() {
        let mut sorted: Vec<&Point> = pts.iter().filter(|p| p.decode_tok_s.is_finite()).collect();
        sorted.sort_by_key(|p| p.context);
        let path: Vec<String> = sorted
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.context), py(p.decode_tok_s)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"{dash}/>",
            path.join(" ")
        );
        for p in &sorted {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{col}\"><title>{} at {}: {:.2} tok/s</title></circle>",
                px(p.context),
                py(p.decode_tok_s),
                escape(label),
                p.context,
                p.decode_tok_s
            );
        }
        let ly = top + 8.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{col}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            right + 10.0,
            right + 34.0,
            right + 40.0,
            ly + 4.0,
            escape(label)
        );
    }
}

fn trim_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gemma 3 1B: 26 layers, every sixth global, one kv head of 256, window 512.
    fn kv_1b() -> KvShape {
        KvShape::gemma3(26, 1, 256, 512, 6)
    }

    #[test]
    fn the_1b_has_four_global_layers() {
        let kv = kv_1b();
        let globals: Vec<usize> = (0..26).filter(|&i| kv.global[i]).collect();
        assert_eq!(globals, vec![5, 11, 17, 23]);
    }

    #[test]
    fn kv_bytes_count_the_window_on_sliding_layers_only() {
        let kv = kv_1b();
        // bf16, context 1000: 4 global layers read 1000 positions, 22 sliding ones 512; each
        // position is a key and a value of 256 elements of 2 bytes.
        let expected = (4 * 1000 + 22 * 512) * 2 * 256 * 2;
        assert_eq!(kv.bytes_read(1000, 2), expected);
        // Below the window every layer reads the whole context.
        assert_eq!(kv.bytes_read(100, 4), 26 * 100 * 2 * 256 * 4);
    }

    #[test]
    fn the_floor_is_bandwidth_over_bytes_per_token() {
        let kv = kv_1b();
        // 999,885,952 parameters in bf16, at context 160, with 40 GB/s.
        let weights = 999_885_952u64 * 2;
        let f = floor(weights, &kv, 2, 160, 40.0);
        let kv_bytes = 26 * 160 * 2 * 256 * 2;
        assert_eq!(f.kv_bytes, kv_bytes);
        let want = 40e9 / (weights + kv_bytes) as f64;
        assert!((f.tok_s - want).abs() < 1e-9);
        // About 20 tokens/s: the order of magnitude the issue quotes for this machine.
        assert!((19.5..20.1).contains(&f.tok_s), "{}", f.tok_s);
    }

    #[test]
    fn the_best_bandwidth_sample_is_kept_with_all_samples() {
        let mut a = fixture().bandwidth;
        let mut b = a.clone();
        a.read_gb_s = 20.0;
        b.read_gb_s = 31.0;
        b.copy_gb_s = 15.0;
        let best = Bandwidth::best_of(&[a.clone(), b, a]);
        assert_eq!((best.read_gb_s, best.copy_gb_s), (31.0, 15.0));
        assert_eq!(best.samples_read_gb_s, vec![20.0, 31.0, 20.0]);
    }

    #[test]
    fn nice_axes_cover_the_maximum_with_round_steps() {
        assert_eq!(nice_axis(23.0), (25.0, 5.0));
        assert_eq!(nice_axis(1.3), (1.5, 0.5));
        assert_eq!(nice_axis(0.9), (1.0, 0.2));
        assert_eq!(nice_axis(980.0), (1000.0, 200.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
    }

    pub(crate) fn fixture() -> Report {
        let kv = kv_1b();
        let run = |dtype: &str, elem: u64, ours: (f64, f64), tf: (f64, f64)| {
            let f = floor(999_885_952 * elem, &kv, elem, 160, 40.0);
            let sweep_floor = [128, 512]
                .iter()
                .map(|&c| Point {
                    context: c,
                    decode_tok_s: floor(999_885_952 * elem, &kv, elem, c, 40.0).tok_s,
                })
                .collect();
            let mut us = EngineRun::measured(
                OURS,
                None,
                Metrics {
                    prompt_tokens: 128,
                    generated_tokens: 64,
                    prefill_tok_s: ours.0,
                    decode_tok_s: ours.1,
                    ttft_ms: Some(128.0 / ours.0 * 1e3),
                    load_s: Some(0.4),
                    peak_rss_bytes: Some(2_100 << 20),
                    preflight_ms: Some(3.5),
                    others_cores: Some(0.05),
                },
            );
            us.sweep = vec![
                Point {
                    context: 128,
                    decode_tok_s: ours.1,
                },
                Point {
                    context: 512,
                    decode_tok_s: ours.1 * 0.9,
                },
            ];
            let mut peer = EngineRun::measured(
                "transformers",
                Some("5.24.0".into()),
                Metrics {
                    prefill_tok_s: tf.0,
                    decode_tok_s: tf.1,
                    ..Default::default()
                },
            );
            peer.sweep = vec![Point {
                context: 128,
                decode_tok_s: tf.1,
            }];
            ModelRun {
                model: "1b".into(),
                dtype: dtype.into(),
                checkpoint: format!("target/bench/models/1b-{dtype}"),
                params: 999_885_952,
                checkpoint_bytes: 999_885_952 * elem,
                bandwidth_bound: true,
                floor: f,
                sweep_floor,
                engines: vec![
                    us,
                    peer,
                    EngineRun::skipped("llama.cpp", "cmake failed: no C++ compiler"),
                ],
            }
        };
        Report {
            created_unix_s: 0,
            commit: Some("abc123".into()),
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                flags: vec!["avx2".into(), "avx512_bf16".into()],
                cpu_kernels: vec!["avx512".into(), "avx2".into(), "portable".into()],
                memory_gib: 24.0,
            },
            load_average: [0.1, 0.2],
            settings: Settings {
                threads: 2,
                prompt_tokens: 128,
                new_tokens: 64,
                contexts: vec![128, 512],
                sweep_new_tokens: 8,
                runs: 1,
                seed: 7,
            },
            bandwidth: Bandwidth {
                read_gb_s: 40.0,
                copy_gb_s: 20.0,
                buffer_bytes: 1 << 30,
                threads: 2,
                repeats: 5,
                samples_read_gb_s: vec![38.0, 40.0],
            },
            op_matrix: Some(OpMatrix {
                wall_s: 1.5,
                passed: true,
                summary: "executed 470, passed 470".into(),
            }),
            runs: vec![
                run("bf16", 2, (34.0, 1.25), (335.0, 19.8)),
                run("f32", 4, (98.0, 8.0), (90.0, 4.5)),
            ],
        }
    }

    /// [`fixture`] with a row of every kind: two paths of ours, a peer held to ours on its own
    /// variant, a skipped and a failed peer, a note, and a checkpoint that fits in the caches.
    fn every_kind_of_row() -> Report {
        let mut r = fixture();
        let bf16 = &mut r.runs[0];
        bf16.engines[0].variant = Some("avx512".into());
        bf16.engines[0].read_gb_s = Some(39.0);
        let mut avx2 = bf16.engines[0].clone();
        avx2.variant = Some("avx2".into());
        avx2.metrics.as_mut().unwrap().decode_tok_s = 1.0;
        avx2.sweep[1].decode_tok_s = 0.95;
        let mut llama = bf16.engines[1].clone();
        (llama.engine, llama.variant) = ("llama.cpp".into(), Some("avx2".into()));
        llama.version = Some("abc1234 (from llama-cpp-python 0.3.36)".into());
        llama.read_gb_s = Some(20.0);
        llama.notes.push(
            "llama-bench: its own prompt ids, TTFT = prompt / prefill rate, no load time".into(),
        );
        bf16.engines.insert(1, avx2);
        bf16.engines.push(llama);
        let f32 = &mut r.runs[1];
        f32.bandwidth_bound = false;
        let mut failed = EngineRun::failed("llama.cpp", "llama-bench exited with 1: see the log");
        failed.variant = Some("native".into());
        f32.engines.push(failed);
        f32.engines[1]
            .notes
            .push("greedy tokens equal to gemma3's: 63 of 64".into());
        r.derive();
        r
    }

    /// What users see, committed: a change in a table, the Markdown, the plot or report.json
    /// shows in review, and a refactoring of the renderers must leave these as they are.
    #[test]
    fn the_renderings_are_the_committed_ones() {
        let r = every_kind_of_row();
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!("bench_report_txt", r.render_text());
            insta::assert_snapshot!("bench_report_md", r.render_markdown());
            insta::assert_snapshot!("bench_decode_vs_context_svg", r.svg());
            insta::assert_snapshot!(
                "bench_report_json",
                serde_json::to_string_pretty(&r).unwrap()
            );
        });
    }

    #[test]
    fn ratios_are_ours_over_the_peer_and_each_engine_over_the_floor() {
        let mut r = fixture();
        r.derive();
        let bf16 = &r.runs[0];
        let tf = &bf16.engines[1];
        let ratios = tf.ours_over_this.as_ref().unwrap();
        assert!((ratios.prefill.unwrap() - 34.0 / 335.0).abs() < 1e-12);
        assert!((ratios.decode.unwrap() - 1.25 / 19.8).abs() < 1e-12);
        assert!(bf16.engines[0].ours_over_this.is_none());
        let ours_floor = bf16.engines[0].decode_over_floor.unwrap();
        assert!((ours_floor - 1.25 / bf16.floor.tok_s).abs() < 1e-12);
        // An engine measured while the bandwidth was 20 GB/s is held to half the floor.
        let mut r = fixture();
        r.runs[0].engines[1].read_gb_s = Some(20.0);
        r.derive();
        let half = r.runs[0].floor.tok_s / 2.0;
        let got = r.runs[0].engines[1].decode_over_floor.unwrap();
        assert!((got - 19.8 / half).abs() < 1e-9, "{got}");
        // A skipped peer has no numbers and no ratios.
        assert!(bf16.engines[2].ours_over_this.is_none());
        assert!(bf16.engines[2].decode_over_floor.is_none());
    }

    #[test]
    fn the_table_shows_every_engine_the_floor_and_skips_with_their_reason() {
        let mut r = fixture();
        r.derive();
        let text = r.render_text();
        assert!(
            text.contains("[38.0, 40.0]): best read 40.0 GB/s, memcpy 20.0 GB/s"),
            "{text}"
        );
        assert!(text.contains("op-matrix --backend cpu: 1.50 s wall, passed"));
        assert!(
            text.contains("flags: avx2 avx512_bf16; our CPU kernels here: avx512, avx2, portable"),
            "{text}"
        );
        let mut zen3 = r.clone();
        zen3.machine.flags = vec!["avx2".into(), "fma".into()];
        zen3.machine.cpu_kernels = vec!["avx2".into(), "portable".into()];
        assert!(zen3
            .preamble()
            .contains("flags: avx2 fma (no avx512_bf16); our CPU kernels here: avx2, portable"));
        assert!(text.contains("transformers 5.24.0"));
        assert!(text.contains("skipped: cmake failed: no C++ compiler"));
        assert!(text.contains("floor (bandwidth)"));
        // bf16 ours over transformers: prefill 34/335 = 0.10x, decode 1.25/19.8 = 0.06x.
        assert!(text.contains("0.10x 0.06x"), "{text}");
        // f32: 98/90 = 1.09x, 8/4.5 = 1.78x.
        assert!(text.contains("1.09x 1.78x"), "{text}");
        // The sweep table has a column per context and a floor row.
        let sweep = r.sweep_table(ASCII_FULL_CONDENSED).unwrap().to_string();
        assert!(sweep.contains("ctx 128") && sweep.contains("ctx 512"));
        assert_eq!(sweep.lines().filter(|l| l.contains("floor")).count(), 2);
        // transformers measured only context 128.
        assert!(sweep
            .lines()
            .any(|l| l.contains("transformers") && l.trim_end().ends_with("- |")));
    }

    #[test]
    fn each_path_of_ours_is_a_row_and_a_peer_is_held_to_ours_on_its_own_variant() {
        let mut r = fixture();
        let run = &mut r.runs[0];
        run.engines[0].variant = Some("avx512".into());
        let mut avx2 = run.engines[0].clone();
        avx2.variant = Some("avx2".into());
        avx2.metrics.as_mut().unwrap().decode_tok_s = 1.0;
        let mut llama = run.engines[1].clone();
        (llama.engine, llama.variant) = ("llama.cpp".into(), Some("avx2".into()));
        run.engines.insert(1, avx2);
        run.engines.push(llama);
        r.derive();
        let e = &r.runs[0].engines;
        let labels: Vec<String> = e.iter().map(EngineRun::label).collect();
        assert_eq!(
            labels,
            [
                "gemma3 (avx512)",
                "gemma3 (avx2)",
                "transformers",
                "llama.cpp",
                "llama.cpp (avx2)"
            ]
        );
        let against = |i: usize| {
            e[i].ours_over_this
                .as_ref()
                .map(|r| (r.ours.clone(), r.decode))
        };
        assert_eq!(against(0), None);
        assert_eq!(against(1), Some(("gemma3 (avx512)".into(), Some(1.25))));
        assert_eq!(
            against(2),
            Some(("gemma3 (avx512)".into(), Some(1.25 / 19.8)))
        );
        assert_eq!(against(4), Some(("gemma3 (avx2)".into(), Some(1.0 / 19.8))));
        let text = r.render_text();
        assert!(text.contains("1.25x (gemma3 (avx512))"), "{text}");
        assert!(text.contains("0.05x (gemma3 (avx2))"), "{text}");
        // One row of ours in f32: no name after its ratios.
        let f32_peer = text
            .lines()
            .find(|l| l.contains("f32") && l.contains("transformers"))
            .unwrap();
        assert!(
            f32_peer.contains("1.09x 1.78x") && !f32_peer.contains("(gemma3"),
            "{f32_peer}"
        );
        let sweep = r.sweep_table(ASCII_FULL_CONDENSED).unwrap().to_string();
        assert!(sweep.contains("gemma3 (avx512)") && sweep.contains("gemma3 (avx2)"));
        // The two paths of ours are two lines of two shades in the plot.
        let svg = r.svg();
        assert!(svg.contains("gemma3 (avx2) bf16") && svg.contains("gemma3 (avx512) bf16"));
        assert!(svg.contains(color(OURS, 0)) && svg.contains(color(OURS, 1)));
    }

    #[test]
    fn a_model_that_fits_in_cache_gets_no_floor_ratio_and_no_floor_line() {
        let mut r = fixture();
        r.runs[1].bandwidth_bound = false;
        r.derive();
        assert!(r.runs[1]
            .engines
            .iter()
            .all(|e| e.decode_over_floor.is_none()));
        assert!(r.runs[0].engines[0].decode_over_floor.is_some());
        assert!(r.render_text().contains("fit in the CPU caches"));
        let svg = r.svg();
        assert!(svg.contains("floor bf16") && !svg.contains("floor f32"));
    }

    #[test]
    fn markdown_has_the_preamble_as_a_list_and_pipe_tables() {
        let mut r = fixture();
        r.derive();
        let md = r.render_markdown();
        assert!(md.starts_with("- machine: Test CPU"), "{md}");
        assert!(md.contains("- commit abc123"));
        assert!(md.contains("| 1b    | bf16  | gemma3 "), "{md}");
        assert!(md.contains("|-------|"), "{md}");
        assert!(md.contains("Decode tokens/s against context"));
    }

    #[test]
    fn json_round_trips_with_tagged_outcomes() {
        let mut r = fixture();
        r.derive();
        let json = serde_json::to_string_pretty(&r).unwrap();
        assert!(json.contains("\"status\": \"skipped\""));
        assert!(json.contains("\"status\": \"measured\""));
        let back: Report = serde_json::from_str(&json).unwrap();
        // Floats may differ in the last bit after a round trip; compare what can't.
        assert_eq!(back.runs.len(), r.runs.len());
        for (b, r) in back.runs.iter().zip(&r.runs) {
            assert_eq!(b.engines.len(), r.engines.len());
            for (b, r) in b.engines.iter().zip(&r.engines) {
                assert_eq!((&b.engine, &b.outcome), (&r.engine, &r.outcome));
                let (x, y) = (b.decode_over_floor, r.decode_over_floor);
                assert_eq!(x.is_some(), y.is_some());
                assert!((x.unwrap_or(0.0) - y.unwrap_or(0.0)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn the_svg_has_a_line_per_engine_and_dtype_and_the_floors() {
        let mut r = fixture();
        r.derive();
        let svg = r.svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        // ours and transformers in two dtypes, plus two floors; llama.cpp was skipped.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains("gemma3 bf16") && svg.contains("floor f32"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // The points stay inside the panel.
        for cap in svg.split("<circle cx=\"").skip(1) {
            let x: f64 = cap.split('"').next().unwrap().parse().unwrap();
            assert!((64.0..=410.0).contains(&x), "{x}");
        }
    }
}
