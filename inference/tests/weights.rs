//! Checkpoint layouts: sharded files with an index, bf16 files, missing tensors.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use inference::load::checkpoint::Checkpoint;
use inference::model::Logits;
use inference::Error;
use serde_json::json;

fn tensors(preset: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        checkpoint_dir(preset).join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

/// A copy of `preset` with its weights replaced by `write(dir)`.
fn variant(preset: &str, write: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(checkpoint_dir(preset).join(name), dir.path().join(name)).unwrap();
    }
    write(dir.path());
    dir
}

fn logits(dir: &Path, dtype: DType) -> Vec<Vec<f32>> {
    let model = Checkpoint::open(dir)
        .unwrap()
        .load_model(&Device::Cpu, dtype)
        .unwrap();
    let ids = ids(&reference("tiny-text")["prompt"]["token_ids"]);
    rows(
        &model
            .forward(&ids, &mut model.new_cache(), Logits::All)
            .unwrap(),
    )
}

#[test]
fn sharded_checkpoint_with_index_loads_the_same_model() {
    let all = tensors("tiny-text");
    let dir = variant("tiny-text", |dir| {
        let mut names: Vec<&String> = all.keys().collect();
        names.sort();
        let (a, b) = names.split_at(names.len() / 2);
        let mut weight_map = serde_json::Map::new();
        for (file, part) in [
            ("model-00001-of-00002.safetensors", a),
            ("model-00002-of-00002.safetensors", b),
        ] {
            let shard: HashMap<&str, Tensor> =
                part.iter().map(|n| (n.as_str(), all[*n].clone())).collect();
            candle_core::safetensors::save(&shard, dir.join(file)).unwrap();
            for n in part {
                weight_map.insert(n.to_string(), json!(file));
            }
        }
        let index = json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    });
    assert_eq!(
        Checkpoint::open(dir.path()).unwrap().weight_files().len(),
        2
    );
    let single = logits(&checkpoint_dir("tiny-text"), DType::F32);
    assert_eq!(logits(dir.path(), DType::F32), single);
}

#[test]
fn bf16_checkpoint_matches_the_f32_checkpoint_loaded_as_bf16() {
    let bf16: HashMap<String, Tensor> = tensors("tiny-text")
        .into_iter()
        .map(|(n, t)| (n, inference::ops::cast(&t, DType::BF16).unwrap()))
        .collect();
    let dir = variant("tiny-text", |dir| {
        candle_core::safetensors::save(&bf16, dir.join("model.safetensors")).unwrap();
    });
    let from_f32 = logits(&checkpoint_dir("tiny-text"), DType::BF16);
    assert_eq!(logits(dir.path(), DType::BF16), from_f32);
}

#[test]
fn a_missing_tensor_is_named() {
    let mut all = tensors("tiny-text");
    all.remove("model.layers.3.self_attn.k_norm.weight");
    let dir = variant("tiny-text", |dir| {
        candle_core::safetensors::save(&all, dir.join("model.safetensors")).unwrap();
    });
    let err = Checkpoint::open(dir.path())
        .unwrap()
        .load_model(&Device::Cpu, DType::F32)
        .err()
        .expect("loading must fail");
    assert!(
        matches!(&err, Error::MissingTensor { name, .. } if name == "model.layers.3.self_attn.k_norm.weight"),
        "{err}"
    );
}
