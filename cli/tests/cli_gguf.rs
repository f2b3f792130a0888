//! `gemma3` on GGUF files: the tiny text checkpoint written as llama.cpp lays a GGUF out, in
//! f32 and in Q8_0, generates and scores from `--gguf` as from its safetensors, with the
//! tokenizer and chat template the file carries.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::GgmlDType;
use common::checkpoint_dir;
use gemma3_interface::generation_report::GenerationReport;
use inference::load::checkpoint::Checkpoint;
use inference::load::gguf;

const PROMPT: &str = "The clockmaker opens his shop";

/// The tiny text checkpoint as one GGUF file in `dir`.
fn convert(dir: &Path, matrices: GgmlDType) -> PathBuf {
    let source = checkpoint_dir("tiny-text");
    let path = dir.join("tiny-text.gguf");
    gguf::write_checkpoint(&Checkpoint::open(&source).unwrap(), &path, matrices).unwrap();
    path
}

/// `generate --json` greedily for 8 tokens from `model` (`--gguf FILE` or `--model-dir DIR`),
/// the prompt in the checkpoint's chat template.
fn greedy(model: &[&str]) -> GenerationReport {
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .arg("generate")
        .args(model)
        .args([
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--json",
            "--temperature",
            "0",
        ])
        .args(["--prompt", PROMPT, "--max-tokens", "8", "--ignore-eos"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{model:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_f32_gguf_generates_what_its_safetensors_generate() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert(dir.path(), GgmlDType::F32);
    let from_gguf = greedy(&["--gguf", path.to_str().unwrap()]);
    let source = checkpoint_dir("tiny-text");
    let from_safetensors = greedy(&["--model-dir", source.to_str().unwrap()]);
    assert_eq!(from_gguf.token_ids.len(), 8);
    assert_eq!(from_gguf.token_ids, from_safetensors.token_ids);
    assert_eq!(from_gguf.prompt_tokens, from_safetensors.prompt_tokens);
}

#[test]
fn a_q8_0_gguf_scores_a_text_close_to_its_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert(dir.path(), GgmlDType::Q8_0);
    let ppl = |model: &[&str]| -> f64 {
        let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
            .arg("perplexity")
            .args(model)
            .args([
                "--device", "cpu", "--dtype", "f32", "--json", "--text", PROMPT,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model:?}: {stderr}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["perplexity"].as_f64().expect("a perplexity")
    };
    let q8 = ppl(&["--gguf", path.to_str().unwrap()]);
    let f32 = ppl(&["--model-dir", checkpoint_dir("tiny-text").to_str().unwrap()]);
    assert!(
        q8.is_finite() && (q8 / f32 - 1.0).abs() < 0.05,
        "{q8} vs {f32}"
    );
}
