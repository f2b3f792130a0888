//! The preamble and the two tables, main and sweep, in any comfy-table preset.

use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment, Table};

use crate::bench::report::{Outcome, Point, Report, OURS};

impl Report {
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
