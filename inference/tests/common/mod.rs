//! Shared helpers for the integration tests: the committed tiny checkpoints and their
//! transformers reference outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use inference::load::checkpoint::Checkpoint;
use inference::model::Gemma3;
use serde_json::Value;

pub const PRESETS: [&str; 2] = ["tiny-text", "tiny-multimodal"];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn checkpoint_dir(preset: &str) -> PathBuf {
    repo_root().join("golden/models").join(preset)
}

pub fn load(preset: &str, dtype: DType) -> Gemma3 {
    Checkpoint::open(&checkpoint_dir(preset))
        .and_then(|c| c.load_model(&Device::Cpu, dtype))
        .unwrap_or_else(|e| panic!("loading {preset}: {e}"))
}

pub fn reference(preset: &str) -> Value {
    let path = repo_root()
        .join("golden/reference")
        .join(preset)
        .join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("reference.json"))
        .expect("valid JSON")
}

pub fn reference_logits(preset: &str) -> Vec<Vec<f32>> {
    let path = repo_root()
        .join("golden/reference")
        .join(preset)
        .join("logits.safetensors");
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).expect("logits.safetensors");
    tensors["prompt_logits"].to_vec2().expect("2-D f32 logits")
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an id list")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a number list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

pub fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().expect("2-D f32 tensor")
}

/// Largest absolute difference between two equally shaped matrices.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row counts differ");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "row lengths differ");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}
