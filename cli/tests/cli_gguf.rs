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

/// `gemma3 COMMAND --json` on the CPU in f32, its document.
fn json<T: serde::de::DeserializeOwned>(command: &str, args: &[&str]) -> T {
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .arg(command)
        .args(["--device", "cpu", "--dtype", "f32", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{command} {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `generate` greedily for `n` tokens from `model` (`--gguf FILE` or `--model-dir DIR`).
fn greedy(model: &[&str], prompt: &[&str], n: usize) -> GenerationReport {
    let n = n.to_string();
    let args = [
        &["--temperature", "0", "--max-tokens", &n, "--ignore-eos"],
        prompt,
    ]
    .concat();
    json("generate", &[model, &args].concat())
}

/// `perplexity` of `text` under `model`.
fn perplexity(model: &[&str], text: &str) -> f64 {
    let doc: serde_json::Value = json("perplexity", &[model, &["--text", text]].concat());
    doc["perplexity"].as_f64().expect("a perplexity")
}

#[test]
fn an_f32_gguf_generates_what_its_safetensors_generate() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert(dir.path(), GgmlDType::F32);
    let templated = ["--prompt", PROMPT];
    let from_gguf = greedy(&["--gguf", path.to_str().unwrap()], &templated, 8);
    let source = checkpoint_dir("tiny-text");
    let from_safetensors = greedy(&["--model-dir", source.to_str().unwrap()], &templated, 8);
    assert_eq!(from_gguf.token_ids.len(), 8);
    assert_eq!(from_gguf.token_ids, from_safetensors.token_ids);
    assert_eq!(from_gguf.prompt_tokens, from_safetensors.prompt_tokens);
}

/// Every file of golden/reference/llama_cpp.json, from a directory holding only it: the
/// perplexity within 5% of llama.cpp's (the library's test bounds each token's
/// log-probability), and the greedy continuation of the 8-bit and wider types llama.cpp's.
#[test]
fn every_gguf_type_runs_from_a_directory_as_llama_cpp_ran_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/reference/llama_cpp.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let prompt = reference["prompt"].as_str().unwrap();
    for file in reference["files"].as_array().unwrap() {
        let (checkpoint, kind) = (
            file["checkpoint"].as_str().unwrap(),
            file["type"].as_str().unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let source = Checkpoint::open(&checkpoint_dir(checkpoint)).unwrap();
        let matrices = gguf::matrix_type(kind).unwrap();
        gguf::write_checkpoint(&source, &dir.path().join("model.gguf"), matrices).unwrap();
        let model = ["--model-dir", dir.path().to_str().unwrap()];

        let logprobs: Vec<f64> = serde_json::from_value(file["logprobs"].clone()).unwrap();
        let theirs = (-logprobs.iter().sum::<f64>() / logprobs.len() as f64).exp();
        let ours = perplexity(&model, prompt);
        assert!(
            (ours / theirs - 1.0).abs() < 0.05,
            "{checkpoint} {kind}: perplexity {ours} vs llama.cpp's {theirs}"
        );

        let expected: Vec<u32> = serde_json::from_value(file["greedy"].clone()).unwrap();
        let report = greedy(&model, &["--prompt", prompt, "--raw"], expected.len());
        if matches!(kind, "f32" | "f16" | "bf16" | "q8_0" | "q6_k") {
            assert_eq!(report.token_ids, expected, "{checkpoint} {kind}");
        }
    }
}

/// Within 10% on the reference text: rounding the activations to 8 bits, as llama.cpp does,
/// moves this random model's perplexity by a few percent (llama.cpp's own Q8_0 file 1.9% from
/// its f32 one; ours 4.6% with the prompt tiles of AVX-512 VNNI, 2.7% on AVX2), where a weight
/// read wrongly moves it by far more.
#[test]
fn a_q8_0_gguf_scores_a_text_close_to_its_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert(dir.path(), GgmlDType::Q8_0);
    let text = "The clockmaker opens his shop, and the students ask why the pendulum swings.";
    let q8 = perplexity(&["--gguf", path.to_str().unwrap()], text);
    let f32 = perplexity(
        &["--model-dir", checkpoint_dir("tiny-text").to_str().unwrap()],
        text,
    );
    assert!(
        q8.is_finite() && (q8 / f32 - 1.0).abs() < 0.1,
        "{q8} vs {f32}"
    );
}

/// The CPU plays a device without a Q8_0 projection (`--inject-unsupported qlinear`): the
/// preflight of a Q8_0 file names the op and its format before the weights load, and
/// `--fallback cpu` runs it on the host with the same tokens. A safetensors checkpoint
/// launches no quantized op, so the same device passes its preflight.
#[test]
fn the_preflight_replays_the_block_formats_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert(dir.path(), GgmlDType::Q8_0);
    let model = ["--gguf", path.to_str().unwrap()];
    let prompt = ["--prompt", PROMPT];
    let refuse = ["--inject-unsupported", "qlinear"];

    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(["generate", "--device", "cpu"])
        .args(model)
        .args(prompt)
        .args(refuse)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cpu cannot run this model")
            && stderr.contains("qlinear (q8_0: no cpu implementation for qlinear"),
        "{stderr}"
    );

    let plain = greedy(&model, &prompt, 8);
    let hybrid = greedy(
        &model,
        &[&prompt[..], &refuse, &["--fallback", "cpu"]].concat(),
        8,
    );
    assert_eq!(hybrid.token_ids, plain.token_ids);

    let source = checkpoint_dir("tiny-text");
    let dense = greedy(
        &["--model-dir", source.to_str().unwrap()],
        &[&prompt[..], &refuse].concat(),
        8,
    );
    assert_eq!(dense.token_ids.len(), 8);
}
