//! Fuzzing on the stable toolchain: proptest edits the files a checkpoint is made of
//! (`config.json`, the safetensors header, the shard index, `tokenizer.json`, the chat
//! template), and every reader must answer with a value or an error: never a panic, an abort or
//! a hang. Each target tries `PROPTEST_CASES` inputs (64 unless set); an input that ever failed
//! is kept in `fuzz.proptest-regressions` beside this file and replayed first on every run.

mod common;

use std::path::Path;

use candle_core::{DType, Device};
use inference::load::checkpoint::Checkpoint;
use inference::load::config::ModelConfig;
use inference::text::chat::{ChatTemplate, Message};
use inference::text::tokenizer::Tokenizer;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        ..ProptestConfig::default()
    }
}

/// What a careless or hostile writer puts where a value was.
fn hostile_value() -> impl Strategy<Value = Value> {
    let float = prop_oneof![
        Just(f64::MAX),
        Just(-1.0),
        Just(0.0),
        Just(1e-300),
        Just(0.5),
        any::<f64>(),
    ]
    .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![Just(0u64), Just(1), Just(7), Just(u64::MAX), Just(1 << 40)]
            .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        float,
        "\\PC{0,12}".prop_map(Value::from),
        prop::collection::vec((0u32..300).prop_map(Value::from), 0..4).prop_map(Value::from),
        Just(Value::Object(Map::new())),
    ]
}

/// Edits of a JSON document: each picks a member (by index, among every member at most three
/// objects deep) and removes it (`None`) or puts a hostile value there.
fn edits() -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
    prop::collection::vec((any::<usize>(), prop::option::of(hostile_value())), 1..5)
}

/// The paths of every member of `v`'s objects, at most `depth` objects deep.
fn paths(v: &Value, depth: usize, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Value::Object(map) = v else { return };
    for (key, child) in map {
        prefix.push(key.clone());
        out.push(prefix.clone());
        if depth > 1 {
            paths(child, depth - 1, prefix, out);
        }
        prefix.pop();
    }
}

fn apply(doc: &Value, edits: &[(usize, Option<Value>)]) -> Value {
    let mut doc = doc.clone();
    for (pick, value) in edits {
        let mut all = Vec::new();
        paths(&doc, 3, &mut Vec::new(), &mut all);
        let Some(path) = all.get(pick % all.len().max(1)) else {
            return doc;
        };
        let (last, parents) = path.split_last().expect("a path has a member");
        let mut at = &mut doc;
        for key in parents {
            at = &mut at[key.as_str()];
        }
        let Value::Object(map) = at else { continue };
        match value {
            Some(v) => map.insert(last.clone(), v.clone()),
            None => map.remove(last),
        };
    }
    doc
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A copy of the tiny text checkpoint in a temporary directory, for a target to spoil.
fn copy_of_tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::checkpoint_dir("tiny-text")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Opens and loads the checkpoint in `dir` on the CPU; an error is a fine answer.
fn load(dir: &Path) {
    if let Ok(checkpoint) = Checkpoint::open(dir) {
        let _ = checkpoint.tokenizer();
        let _ = checkpoint.load_model(&Device::Cpu, DType::F32);
    }
}

/// The tiny checkpoint's `model.safetensors`: its header as JSON, and the bytes after it.
fn safetensors_parts() -> (Value, Vec<u8>) {
    let bytes =
        std::fs::read(common::checkpoint_dir("tiny-text").join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn safetensors(header: &Value, data: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

/// Found by `tokenizer_json` with 2,000 inputs: tokenizers 0.23 panicked reading a BPE model
/// whose continuing-subword prefix is longer than a merge's second token.
#[test]
fn a_subword_prefix_that_the_merges_lack_is_an_error() {
    let path = common::checkpoint_dir("tiny-text").join("tokenizer.json");
    let mut doc = read_json(&path);
    doc["model"]["continuing_subword_prefix"] = Value::String("㈠".into());
    let err = Tokenizer::from_bytes(&serde_json::to_vec(&doc).unwrap(), &path)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("prefix `㈠`"), "{err}");
}

#[test]
fn a_merge_longer_than_every_token_is_an_error() {
    // tokenizers 0.23 copies each merge into a buffer as long as the longest token, and
    // panicked here; the error names the file instead.
    let path = Path::new("tokenizer.json");
    let json = br#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}"#;
    let err = Tokenizer::from_bytes(json, path).err().expect("refused");
    let message = err.to_string();
    assert!(message.contains("tokenizer.json"), "{message}");
    assert!(message.contains("tokenizers library failed"), "{message}");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_json(edits in edits()) {
        let dir = copy_of_tiny();
        let path = dir.path().join("config.json");
        let doc = apply(&read_json(&path), &edits);
        let _ = ModelConfig::from_json(&doc);
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        load(dir.path());
    }

    #[test]
    fn safetensors_header(edits in edits(), cut in prop::option::of(any::<prop::sample::Index>())) {
        let (header, mut data) = safetensors_parts();
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len() + 1));
        }
        let dir = copy_of_tiny();
        let bytes = safetensors(&apply(&header, &edits), &data);
        std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
        load(dir.path());
    }

    #[test]
    fn shard_index(edits in edits(), names in prop::collection::vec(
        prop_oneof![
            Just("model-00001-of-00001.safetensors".to_string()),
            Just("../model.safetensors".to_string()),
            Just("/etc/passwd".to_string()),
            Just(".".to_string()),
            "\\PC{0,16}",
        ],
        1..4,
    )) {
        let dir = copy_of_tiny();
        let shard = "model-00001-of-00001.safetensors";
        std::fs::rename(dir.path().join("model.safetensors"), dir.path().join(shard)).unwrap();
        let (header, _) = safetensors_parts();
        let mut weight_map = Map::new();
        for (i, name) in header.as_object().unwrap().keys().filter(|k| *k != "__metadata__").enumerate() {
            let file = if i % 3 == 0 { &names[i % names.len()] } else { shard };
            weight_map.insert(name.clone(), Value::from(file));
        }
        let index = serde_json::json!({"metadata": {"total_size": 1}, "weight_map": weight_map});
        let index = apply(&index, &edits);
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        load(dir.path());
    }

    #[test]
    fn tokenizer_json(edits in edits(), text in "\\PC{0,24}") {
        let path = common::checkpoint_dir("tiny-text").join("tokenizer.json");
        let doc = apply(&read_json(&path), &edits);
        if let Ok(tokenizer) = Tokenizer::from_bytes(&serde_json::to_vec(&doc).unwrap(), &path) {
            if let Ok(ids) = tokenizer.encode(&text) {
                let _ = tokenizer.decode(&ids, false);
            }
        }
    }

    #[test]
    fn chat_template(pieces in prop::collection::vec(prop_oneof![
        Just("{{ bos_token }}"),
        Just("{% for m in messages %}"),
        Just("{% endfor %}"),
        Just("{{ m.content }}"),
        Just("{{ m['role'] | upper }}"),
        Just("{% if add_generation_prompt %}"),
        Just("{% else %}"),
        Just("{% endif %}"),
        Just("{% for i in range(1000000) %}"),
        Just("{{ raise_exception('refused') }}"),
        Just("{{ messages[7].content }}"),
        Just("{{ 1 / 0 }}"),
        Just("{% set x = messages * 1000 %}"),
        Just("{{ eos_token * 100000 }}"),
        Just("{%"),
        Just("}}"),
        Just("<start_of_turn>"),
    ], 0..8)) {
        let source: String = pieces.concat();
        if let Ok(template) = ChatTemplate::from_source(source, Some("<bos>"), Some("<eos>")) {
            let _ = template.render(&[Message::new("user", "hi")], true);
        }
    }
}
