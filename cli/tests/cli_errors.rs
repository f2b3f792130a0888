//! Bad input of every kind gives one clear line on stderr and a non-zero exit, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::checkpoint_dir;
use serde_json::Value;

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Runs `gemma3 ARGS` and returns stderr, asserting a clean one-line failure.
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

fn perplexity(dir: &Path, text: &str) -> String {
    fails(&[
        "perplexity",
        "--model-dir",
        dir.to_str().unwrap(),
        "--text",
        text,
    ])
}

#[test]
fn missing_checkpoint_directory() {
    let err = perplexity(&PathBuf::from("no/such/checkpoint"), "hello there");
    assert!(err.contains("no/such/checkpoint"), "{err}");
}

#[test]
fn missing_weight_file() {
    let dir = common::copy("tiny-text");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn missing_text_file() {
    let dir = common::copy("tiny-text");
    let err = fails(&[
        "perplexity",
        "--model-dir",
        dir.path().to_str().unwrap(),
        "--file",
        "no-such.txt",
    ]);
    assert!(err.contains("no-such.txt"), "{err}");
}

#[test]
fn truncated_safetensors() {
    let dir = common::copy("tiny-text");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

/// A valid safetensors file whose tensors are not floats is named as such, not as damaged.
#[test]
fn an_integer_tensor_is_named_not_called_corrupt() {
    let dir = common::copy("tiny-text");
    let path = dir.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let norm = "model.norm.weight";
    let ints = tensors[norm].to_dtype(candle_core::DType::I64).unwrap();
    tensors.insert(norm.into(), ints);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = perplexity(dir.path(), "hello there");
    assert!(
        err.contains(
            "holds `model.norm.weight` as I64; this engine runs weights in f32, bf16 or f16"
        ),
        "{err}"
    );
    assert!(!err.contains("not a valid safetensors file"), "{err}");
}

/// One weight that is not a number made `generate` print `<pad>` tokens and exit 0, and
/// `perplexity` print NaN: both now stop at the first such logits, saying so.
#[test]
fn non_finite_weights_stop_with_an_error_not_a_nan() {
    let dir = common::copy("tiny-text");
    let path = dir.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let norm = "model.norm.weight";
    let nan = (tensors[norm].clone() * f64::NAN).unwrap();
    tensors.insert(norm.into(), nan);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let says = "where numbers belong";
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains(says) && err.contains("NaN"), "{err}");
    let model = dir.path().to_str().unwrap();
    let err = fails(&["generate", "--model-dir", model, "--prompt", "hi"]);
    assert!(err.contains(says), "{err}");
}

#[test]
fn a_generation_config_that_is_not_json_is_named() {
    let dir = common::copy("tiny-text");
    std::fs::write(
        dir.path().join("generation_config.json"),
        "{\"do_sample\": tru",
    )
    .unwrap();
    let model = dir.path().to_str().unwrap();
    // Before the weights load, in each command that samples.
    for args in [&["generate", "--prompt", "hi"][..], &["chat"]] {
        let err = fails(&[args, &["--model-dir", model, "--cpu"]].concat());
        assert!(
            err.contains("generation_config.json is not valid JSON")
                && err.contains("fix or remove"),
            "{err}"
        );
    }
}

#[test]
fn a_weights_file_that_is_a_directory_is_named() {
    let dir = common::copy("tiny-text");
    let path = dir.path().join("model.safetensors");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = perplexity(dir.path(), "hello there");
    assert!(
        err.contains("is a directory, where the weights file should be"),
        "{err}"
    );
}

/// An index may not send the loader out of the checkpoint directory.
#[test]
fn a_shard_outside_the_checkpoint_directory_is_refused() {
    for shard in ["../model.safetensors", "/etc/passwd"] {
        let dir = common::copy("tiny-text");
        let index = serde_json::json!({"weight_map": {"model.norm.weight": shard}});
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        let err = perplexity(dir.path(), "hello there");
        assert!(
            err.contains(&format!(
                "names `{shard}`, outside the checkpoint directory"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_tokenizer_that_crashes_its_library_is_one_error_line() {
    // tokenizers 0.23 panics reading a BPE merge longer than every token of its vocabulary.
    let dir = common::copy("tiny-text");
    let json = r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}"#;
    std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn wrong_tensor_shape() {
    let dir = common::copy("tiny-text");
    edit_config(dir.path(), |m| {
        m.insert("intermediate_size".into(), 96.into());
    });
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains("model.layers.0.mlp.gate_proj.weight"), "{err}");
    assert!(
        err.contains("[128, 64]") && err.contains("[96, 64]"),
        "{err}"
    );
}

#[test]
fn unknown_model_type() {
    let dir = common::copy("tiny-text");
    edit_config(dir.path(), |m| {
        m.insert("model_type".into(), "mistral".into());
    });
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains("unsupported model_type `mistral`"), "{err}");
}

#[test]
fn prompt_longer_than_the_context() {
    let dir = common::copy("tiny-text");
    edit_config(dir.path(), |m| {
        m.insert("max_position_embeddings".into(), 16.into());
    });
    let long = "The river town wakes before the sun and the bakers light their ovens.";
    let err = perplexity(dir.path(), long);
    assert!(err.contains("max_position_embeddings"), "{err}");
    let err = fails(&[
        "generate",
        "--model-dir",
        dir.path().to_str().unwrap(),
        "--prompt",
        long,
    ]);
    assert!(err.contains("max_position_embeddings"), "{err}");
}

/// Sizes are checked before anything is allocated by them: a layer count of 10^18 aborted
/// while the layers were laid out, and one of 0 is no model.
#[test]
fn a_size_no_gemma_3_has_is_named() {
    for (key, value, says) in [
        (
            "num_hidden_layers",
            1_000_000_000_000_000_000u64,
            "more than any Gemma 3 has",
        ),
        ("num_hidden_layers", 0, "must be a positive integer"),
        ("vocab_size", 1 << 40, "more than any Gemma 3 has"),
        (
            "max_position_embeddings",
            1 << 40,
            "more than any Gemma 3 has",
        ),
    ] {
        let dir = common::copy("tiny-text");
        edit_config(dir.path(), |m| {
            m.insert(key.into(), value.into());
        });
        let err = perplexity(dir.path(), "hello there");
        assert!(
            err.contains(key) && err.contains(says),
            "{key}={value}: {err}"
        );
    }
}

/// A context shorter than the KV cache's smallest buffer (16 positions) panicked in it, and a
/// `--max-tokens` past the context aborted on reserving room for that many tokens: both run,
/// and generation stops where the context ends.
#[test]
fn a_short_context_and_a_huge_max_tokens_stop_at_the_context() {
    let dir = common::copy("tiny-text");
    edit_config(dir.path(), |m| {
        m.insert("max_position_embeddings".into(), 8.into());
    });
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(["generate", "--model-dir", dir.path().to_str().unwrap()])
        .args(["--raw", "--prompt", "hi", "--ignore-eos", "--json"])
        .args(["--max-tokens", "100000000000000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let prompt = doc["prompt_tokens"].as_u64().unwrap();
    let tokens = doc["token_ids"].as_array().unwrap().len() as u64;
    assert_eq!(
        prompt + tokens,
        9,
        "{doc}: the last token needs no position"
    );
    assert!(
        stderr.contains("the context of 8 positions is full"),
        "{stderr}"
    );
}

/// Flags that parse but cannot be right exit 2, as clap's own refusals do, and before any
/// checkpoint is opened (this one does not exist).
#[test]
fn malformed_flag_values_exit_2_before_anything_loads() {
    let model = ["--model-dir", "no/such/checkpoint"];
    for (command, flags, says) in [
        (
            "generate",
            &["--prompt", "hi", "--top-p", "2"][..],
            "--top-p",
        ),
        (
            "generate",
            &["--prompt", "hi", "--temperature=-1"],
            "--temperature",
        ),
        ("chat", &["--top-k", "0"], "--top-k"),
        ("perplexity", &["--text", "hi", "--window", "0"], "--window"),
        (
            "perplexity",
            &["--text", "hi", "--window", "8", "--stride", "8"],
            "--stride",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
            .arg(command)
            .args(model)
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{flags:?}: {stderr}"
        );
        assert!(
            !stderr.contains("no/such/checkpoint"),
            "{flags:?}: {stderr}"
        );
    }
}

/// A text far longer than the context is refused from a tokenized prefix, before the whole
/// of it is tokenized: the count says "more than".
#[test]
fn a_huge_text_without_windows_is_refused_early() {
    let dir = common::copy("tiny-text");
    edit_config(dir.path(), |m| {
        m.insert("max_position_embeddings".into(), 64.into());
    });
    let file = dir.path().join("book.txt");
    std::fs::write(
        &file,
        "The river town wakes before the sun. ".repeat(200_000),
    )
    .unwrap();
    let err = fails(&[
        "perplexity",
        "--model-dir",
        dir.path().to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(
        err.contains("the text is more than") && err.contains("--window 64"),
        "{err}"
    );
}

#[test]
fn unknown_device_and_dtype() {
    let dir = checkpoint_dir("tiny-text");
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args([
            "perplexity",
            "--model-dir",
            dir.to_str().unwrap(),
            "--text",
            "hi",
            "--device",
            "tpu",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device `tpu`"));
}

#[test]
fn a_failing_preflight_on_an_explicit_device_names_the_op_before_loading() {
    let dir = common::copy("tiny-text");
    // No weights at all: the preflight must fail first, so nothing is read.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = fails(&[
        "generate",
        "--model-dir",
        dir.path().to_str().unwrap(),
        "--prompt",
        "hi",
        "--device",
        "cpu",
        "--inject-unsupported",
        "rope",
    ]);
    assert!(
        err.contains("cpu cannot run this model") && err.contains("rope"),
        "{err}"
    );
    assert!(err.contains("--no-preflight"), "{err}");
}

#[test]
fn a_checkpoint_path_that_is_a_file_says_what_it_should_be() {
    let dir = common::copy("tiny-text");
    let file = dir.path().join("config.json");
    let err = perplexity(&file, "hello there");
    assert!(
        err.contains("not a checkpoint directory or a .gguf file"),
        "{err}"
    );
}

#[test]
fn a_gguf_file_that_is_not_gguf_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"not a gguf file at all").unwrap();
    let err = fails(&[
        "perplexity",
        "--gguf",
        path.to_str().unwrap(),
        "--text",
        "hello there",
    ]);
    assert!(err.contains("not a readable GGUF file"), "{err}");
}

#[test]
fn a_tokenizer_json_that_disagrees_with_the_gguf_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let source = checkpoint_dir("tiny-text");
    let checkpoint = inference::load::checkpoint::Checkpoint::open(&source).unwrap();
    let gguf = dir.path().join("model.gguf");
    inference::load::gguf::write_checkpoint(
        &checkpoint,
        &gguf,
        candle_core::quantized::GgmlDType::F32,
    )
    .unwrap();
    let other = std::fs::read_to_string(source.join("tokenizer.json"))
        .unwrap()
        .replace("\"<unused511>\"", "\"<other>\"");
    std::fs::write(dir.path().join("tokenizer.json"), other).unwrap();
    let err = perplexity(dir.path(), "hello there");
    assert!(
        err.contains("its tokenizer disagrees with") && err.contains("token 511"),
        "{err}"
    );
}

#[test]
fn a_directory_of_two_gguf_files_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.gguf", "b.gguf"] {
        std::fs::write(dir.path().join(name), b"GGUF").unwrap();
    }
    let err = perplexity(dir.path(), "hello there");
    assert!(err.contains("several GGUF files (a.gguf, b.gguf)"), "{err}");
    assert!(err.contains("--gguf FILE"), "{err}");
}
