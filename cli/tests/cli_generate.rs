//! `gemma3 generate` on the tiny checkpoints: every flag, the transformers greedy reference,
//! the hybrid fallback and Ctrl-C.

mod common;

use std::io::Read;
use std::process::{Command, Output, Stdio};

use common::checkpoint_dir;
use gemma3_interface::generation_report::GenerationReport;
use serde_json::Value;

const PROMPT: &str = "The clockmaker opens his shop";

fn gemma3(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(args)
        .output()
        .unwrap()
}

/// `generate --json` on tiny-text with `args` added; returns the JSON document and stderr.
fn generate(args: &[&str]) -> (Value, String) {
    generate_in(&checkpoint_dir("tiny-text"), args)
}

/// [`generate`] on the checkpoint in `dir`.
fn generate_in(dir: &std::path::Path, args: &[&str]) -> (Value, String) {
    let mut all = vec![
        "generate",
        "--model-dir",
        dir.to_str().unwrap(),
        "--device",
        "cpu",
        "--json",
    ];
    all.extend_from_slice(args);
    let out = gemma3(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (doc, stderr)
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn tokens(doc: &Value) -> Vec<u64> {
    ids(&doc["token_ids"])
}

#[test]
fn temperature_zero_reproduces_the_transformers_greedy_continuation() {
    for preset in op_matrix::bless::MODELS {
        let dir = checkpoint_dir(preset);
        let reference: Value = serde_json::from_str(
            &std::fs::read_to_string(
                dir.join("../../reference")
                    .join(preset)
                    .join("reference.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let prompt = &reference["prompt"];
        let expected = ids(&prompt["greedy_token_ids"]);
        let n = expected.len().to_string();
        let out = gemma3(&[
            "generate",
            "--model-dir",
            dir.to_str().unwrap(),
            "--raw",
            "--prompt",
            prompt["text"].as_str().unwrap(),
            "--temperature",
            "0",
            "--max-tokens",
            &n,
            "--dtype",
            "f32",
            "--cpu",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{preset}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            doc["stats"]["prompt_tokens"].as_u64().unwrap() as usize,
            prompt["token_ids"].as_array().unwrap().len(),
            "{preset}: the prompt tokenized differently"
        );
        assert_eq!(tokens(&doc), expected, "{preset}");
    }
}

#[test]
fn max_tokens_and_the_stats() {
    let (doc, stderr) = generate(&["--prompt", PROMPT, "--max-tokens", "5", "--ignore-eos"]);
    assert_eq!(tokens(&doc).len(), 5);
    assert_eq!(doc["stop"], "max_tokens");
    assert_eq!(doc["finish_reason"], "length");
    let report: GenerationReport = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(report.token_ids.len(), 5);
    let stats = &doc["stats"];
    assert_eq!(stats["generated_tokens"], 5);
    for key in [
        "prefill_tok_s",
        "decode_tok_s",
        "ttft_ms",
        "load_s",
        "preflight_ms",
    ] {
        let v = stats[key].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "stats.{key} = {}", stats[key]);
    }
    let line = stderr.lines().last().unwrap();
    for part in [
        "load",
        "prompt",
        "tok/s",
        "generated 5 tokens",
        "first token after",
    ] {
        assert!(line.contains(part), "stats line lacks `{part}`: {line}");
    }
}

#[test]
fn sampling_is_seeded_and_its_limits_bite() {
    let sample = |extra: &[&str]| {
        let mut args = vec!["--prompt", PROMPT, "--max-tokens", "12", "--ignore-eos"];
        args.extend_from_slice(extra);
        tokens(&generate(&args).0)
    };
    let greedy = sample(&["--temperature", "0"]);
    let hot = ["--temperature", "5"];
    let a = sample(&[&hot[..], &["--seed", "1"]].concat());
    assert_eq!(
        a,
        sample(&[&hot[..], &["--seed", "1"]].concat()),
        "same seed"
    );
    assert_ne!(
        a,
        sample(&[&hot[..], &["--seed", "2"]].concat()),
        "other seed"
    );
    assert_ne!(a, greedy, "a hot temperature should leave the greedy path");
    assert_eq!(sample(&[&hot[..], &["--top-k", "1"]].concat()), greedy);
    assert_eq!(sample(&[&hot[..], &["--top-p", "1e-9"]].concat()), greedy);
}

#[test]
fn the_repeat_penalty_breaks_greedy_loops() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--prompt",
            PROMPT,
            "--max-tokens",
            "16",
            "--ignore-eos",
            "--temperature",
            "0",
        ];
        args.extend_from_slice(extra);
        tokens(&generate(&args).0)
    };
    let repeats = |t: &[u64]| t.windows(2).filter(|w| w[0] == w[1]).count();
    let plain = run(&[]);
    assert!(
        repeats(&plain) > 4,
        "the random tiny model loops: {plain:?}"
    );
    let penalized = run(&["--repeat-penalty", "100", "--repeat-last-n", "16"]);
    assert_eq!(repeats(&penalized), 0, "{penalized:?}");
    assert_eq!(
        run(&["--repeat-penalty", "100", "--repeat-last-n", "0"]),
        plain,
        "a window of 0 tokens penalizes nothing"
    );
}

#[test]
fn a_stop_string_ends_the_output() {
    let (doc, _) = generate(&["--prompt", PROMPT, "--max-tokens", "40", "--ignore-eos"]);
    let text = doc["text"].as_str().unwrap();
    let stop: String = text.chars().skip(3).take(2).collect();
    let args = [
        "--prompt",
        PROMPT,
        "--max-tokens",
        "40",
        "--ignore-eos",
        "--stop",
        &stop,
    ];
    let (stopped, _) = generate(&args);
    let got = stopped["text"].as_str().unwrap();
    // The text ends where the stop string began, as OpenAI's API and llama.cpp's server cut it.
    let at = text.find(&stop).unwrap();
    assert_eq!(got, &text[..at], "{stop:?}");
    assert!(tokens(&stopped).len() < 40, "stopped early");
    assert_eq!(stopped["stop"], "stop_string");
    assert_eq!(stopped["finish_reason"], "stop");
    // Streamed, the stop string is not shown either, though it arrives over several pieces.
    let dir = checkpoint_dir("tiny-text");
    let model = ["generate", "--model-dir", dir.to_str().unwrap(), "--cpu"];
    let out = gemma3(&[&model[..], &args].concat());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", &text[..at])
    );
}

#[test]
fn a_reply_cut_at_max_tokens_says_so() {
    let (doc, stderr) = generate(&[
        "--prompt",
        PROMPT,
        "--max-tokens",
        "2",
        "--temperature",
        "0",
    ]);
    assert_eq!(
        doc["stop"], "max_tokens",
        "the tiny model's first greedy tokens are not EOS"
    );
    assert!(stderr.contains("cut off at --max-tokens 2"), "{stderr}");
    let (_, stderr) = generate(&["--prompt", PROMPT, "--max-tokens", "2", "--ignore-eos"]);
    assert!(
        !stderr.contains("cut off"),
        "--ignore-eos asks for the length: {stderr}"
    );
}

#[test]
fn the_chat_template_system_prompt_and_raw() {
    let count = |args: &[&str]| {
        generate(&[&["--max-tokens", "1"][..], args].concat()).0["stats"]["prompt_tokens"]
            .as_u64()
            .unwrap()
    };
    let raw = count(&["--prompt", PROMPT, "--raw"]);
    let templated = count(&["--prompt", PROMPT]);
    let with_system = count(&["--prompt", PROMPT, "--system", "Answer briefly."]);
    assert!(templated > raw, "the template adds the turn markers");
    assert!(with_system > templated, "the system prompt is rendered");
}

#[test]
fn every_dtype_runs_and_f16_warns() {
    for dtype in ["f32", "bf16", "f16", "auto"] {
        let (doc, stderr) = generate(&["--prompt", PROMPT, "--max-tokens", "3", "--dtype", dtype]);
        assert!(!tokens(&doc).is_empty(), "{dtype}");
        let want = if dtype == "auto" { "f32" } else { dtype };
        assert_eq!(doc["stats"]["dtype"], want, "the stored f32 weights");
        assert!(stderr.contains(&format!("({want})")), "{stderr}");
        assert_eq!(stderr.contains("overflow f16"), dtype == "f16", "{stderr}");
    }
}

#[test]
fn dtype_auto_keeps_a_bf16_checkpoint_in_bf16_on_the_cpu() {
    let dir = common::edited_copy(
        "tiny-text",
        "\"torch_dtype\": \"float32\"",
        "\"torch_dtype\": \"bfloat16\"",
    );
    let (doc, _) = generate_in(dir.path(), &["-p", PROMPT, "-n", "2"]);
    assert_eq!(doc["stats"]["dtype"], "bf16");
}

/// The CPU plays the device: `--inject-unsupported rope` makes it reject rope, in the
/// preflight and at run time.
#[test]
fn fallback_cpu_runs_only_the_missing_op_on_the_host_with_the_same_output() {
    let base = ["--prompt", PROMPT, "--max-tokens", "8", "--ignore-eos"];
    let (plain, _) = generate(&base);
    let refused = [
        &base[..],
        &["--inject-unsupported", "rope", "--no-preflight"],
    ]
    .concat();
    let out = gemma3(
        &[
            &[
                "generate",
                "--model-dir",
                checkpoint_dir("tiny-text").to_str().unwrap(),
            ][..],
            &refused,
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no cpu implementation for rope"),
        "the drill must really remove rope: {stderr}"
    );

    let (hybrid, stderr) = generate(
        &[
            &base[..],
            &["--inject-unsupported", "rope", "--fallback", "cpu"],
        ]
        .concat(),
    );
    assert_eq!(tokens(&hybrid), tokens(&plain));
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("running rope on the cpu") && warnings[0].contains("% of the op time"),
        "{}",
        warnings[0]
    );
    let fallback = &hybrid["stats"]["fallback"];
    assert_eq!(fallback["ops"], serde_json::json!(["rope"]));
    assert!(fallback["calls"].as_u64().unwrap() > 0, "{fallback}");
}

#[test]
fn ctrl_c_stops_generation_cleanly_with_the_stats() {
    let dir = checkpoint_dir("tiny-text");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args([
            "generate",
            "--model-dir",
            dir.to_str().unwrap(),
            "--cpu",
            "--raw",
            "--prompt",
            PROMPT,
            "--max-tokens",
            "1000",
            "--ignore-eos",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first streamed bytes: the handler is installed and generation is running.
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("note: interrupted after"), "{stderr}");
    assert!(
        stderr.contains("first token after"),
        "stats still printed: {stderr}"
    );
    assert!(!stderr.contains("generated 1000 tokens"), "{stderr}");
}

#[test]
fn the_short_flags_are_llama_cpps() {
    let long = generate(&[
        "--prompt",
        PROMPT,
        "--max-tokens",
        "6",
        "--seed",
        "3",
        "--temperature",
        "5",
    ]);
    let short = generate(&[
        "-p",
        PROMPT,
        "-n",
        "6",
        "-s",
        "3",
        "-t",
        "1",
        "-c",
        "64",
        "--temperature",
        "5",
    ]);
    assert_eq!(tokens(&short.0), tokens(&long.0));
    assert_eq!(tokens(&short.0).len(), 6);
    // `-m` is `--model`: the legacy `--which` conflicts with it.
    let out = gemma3(&[
        "generate",
        "-m",
        "google/gemma-3-1b-it",
        "--which",
        "3-1b",
        "-p",
        "hi",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model"));
}

#[test]
fn ctx_size_bounds_the_context() {
    let (full, _) = generate(&["--prompt", PROMPT, "--max-tokens", "30", "--ignore-eos"]);
    let prompt = full["prompt_tokens"].as_u64().unwrap() as usize;
    let ctx = (prompt + 4).to_string();
    let (doc, stderr) = generate(&["--prompt", PROMPT, "-n", "30", "--ignore-eos", "-c", &ctx]);
    assert_eq!(doc["stop"], "context_full", "{stderr}");
    assert_eq!(tokens(&doc), tokens(&full)[..tokens(&doc).len()]);
    assert!((1..=5).contains(&tokens(&doc).len()), "{:?}", tokens(&doc));
    let dir = checkpoint_dir("tiny-text");
    let dir = dir.to_str().unwrap();
    let out = gemma3(&[
        "generate",
        "--model-dir",
        dir,
        "--cpu",
        "-p",
        PROMPT,
        "-c",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gemma3(&["generate", "--model-dir", dir, "-p", PROMPT, "-c", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a context of 0 is a malformed flag"
    );
}

/// `generate` on tiny-text with `free` bytes of memory, as `GEMMA3_AVAILABLE_MEMORY` says.
fn with_free_memory(free: u64, extra: &[&str]) -> Output {
    let dir = checkpoint_dir("tiny-text");
    Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(["generate", "--cpu", "-p", PROMPT, "-n", "2", "--model-dir"])
        .arg(&dir)
        .args(extra)
        .env("GEMMA3_AVAILABLE_MEMORY", free.to_string())
        .output()
        .unwrap()
}

#[test]
fn a_model_is_fitted_to_the_free_memory_before_it_loads() {
    // tiny-text's f32 weights, and room for a KV cache of a few hundred of its 1024 positions
    // (its full layer keeps 256 bytes a position).
    let weights = std::fs::metadata(checkpoint_dir("tiny-text").join("model.safetensors"))
        .unwrap()
        .len();
    let free = weights + 200_000;
    let out = with_free_memory(free, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("context is limited to"), "{stderr}");
    let out = with_free_memory(free, &["-c", "1024"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--ctx-size") && stderr.contains("fits"),
        "{stderr}"
    );
    let out = with_free_memory(1024, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is free; --dtype bf16") || stderr.contains("quantized GGUF"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = with_free_memory(weights * 100, &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("limited"));
}

/// tiny-text's committed `generation_config.json` samples (`do_sample: true, top_k: 64,
/// top_p: 0.95`); a flag overrides each value, and a file saying `do_sample: false`, or none,
/// is greedy.
#[test]
fn generation_config_json_gives_the_defaults_and_flags_override_it() {
    let run = |dir: &std::path::Path, extra: &[&str]| {
        let base = ["-p", PROMPT, "-n", "12", "--ignore-eos", "-s", "5"];
        tokens(&generate_in(dir, &[&base[..], extra].concat()).0)
    };
    let config = |json: Option<&str>| {
        let dir = common::copy("tiny-text");
        let path = dir.path().join("generation_config.json");
        match json {
            Some(json) => std::fs::write(path, json).unwrap(),
            None => std::fs::remove_file(path).unwrap(),
        }
        dir
    };
    let committed = checkpoint_dir("tiny-text");
    let none = config(None);
    let greedy = run(none.path(), &[]);
    let gemma_flags = ["--temperature", "1", "--top-k", "64", "--top-p", "0.95"];
    let sampled = run(none.path(), &gemma_flags);
    assert_ne!(sampled, greedy, "the seed leaves the greedy path");
    assert_eq!(run(&committed, &[]), sampled, "the file's sampling");
    let greedy_file = config(Some(r#"{"do_sample": false, "top_k": 64, "top_p": 0.95}"#));
    assert_eq!(run(greedy_file.path(), &[]), greedy);

    assert_eq!(run(&committed, &["--temperature", "0"]), greedy);
    assert_eq!(
        run(&committed, &["--top-k", "1"]),
        greedy,
        "--top-k over top_k"
    );
    assert_eq!(run(greedy_file.path(), &gemma_flags), sampled);
}
