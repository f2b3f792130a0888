//! Reports built from fixed numbers, for the tests of the data model, the roofline and the
//! renderers.

use super::{
    floor, Bandwidth, EngineRun, KvShape, Machine, Metrics, ModelRun, OpMatrix, Point, Report,
    Settings, OURS,
};

/// Gemma 3 1B: 26 layers, every sixth global, one kv head of 256, window 512.
pub fn kv_1b() -> KvShape {
    KvShape::gemma3(26, 1, 256, 512, 6)
}

/// The 1B in bf16 and f32, each with ours, transformers and a skipped llama.cpp.
pub fn fixture() -> Report {
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
pub fn every_kind_of_row() -> Report {
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
    llama
        .notes
        .push("llama-bench: its own prompt ids, TTFT = prompt / prefill rate, no load time".into());
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
