//! The report's data model, as `report.json` holds it: the machine, the settings, the
//! bandwidth, and every engine's row on every checkpoint.

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

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::fixture::fixture;

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
}
