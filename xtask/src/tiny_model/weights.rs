//! Deterministic random weights, written as safetensors with the Hub's tensor names.

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

use super::Shape;

/// A minimal SigLIP vision tower config, so the multimodal layout is complete.
pub static VISION_CONFIG: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "hidden_size": 32,
        "image_size": 32,
        "intermediate_size": 64,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "patch_size": 8,
        "vision_use_head": false
    })
});

/// A tensor to draw: name, shape, and the mean and std of its normal init.
pub(crate) type Spec = (String, Vec<usize>, f32, f32);

/// The text model's tensors (names without prefix). Embeddings are large enough that greedy
/// choices are never near-ties; projections keep activations at unit scale; norm weights stay
/// near 0 because Gemma applies `1 + w`, except q/k norms, whose gain of about 3 sharpens
/// attention so that outputs depend on context rather than on the current token alone.
pub(crate) fn text_tensors(s: &Shape) -> Vec<Spec> {
    let proj = |n_in: usize| 1.0 / (n_in as f32).sqrt();
    let mut out = vec![(
        "embed_tokens.weight".to_string(),
        vec![s.vocab, s.hidden],
        0.0,
        0.2,
    )];
    for i in 0..s.layers {
        let p = format!("layers.{i}");
        let q = s.heads * s.head_dim;
        let kv = s.kv_heads * s.head_dim;
        out.extend([
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![q, s.hidden],
                0.0,
                proj(s.hidden),
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![kv, s.hidden],
                0.0,
                proj(s.hidden),
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![kv, s.hidden],
                0.0,
                proj(s.hidden),
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![s.hidden, q],
                0.0,
                proj(q),
            ),
            (
                format!("{p}.self_attn.q_norm.weight"),
                vec![s.head_dim],
                2.0,
                0.2,
            ),
            (
                format!("{p}.self_attn.k_norm.weight"),
                vec![s.head_dim],
                2.0,
                0.2,
            ),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![s.intermediate, s.hidden],
                0.0,
                proj(s.hidden),
            ),
            (
                format!("{p}.mlp.up_proj.weight"),
                vec![s.intermediate, s.hidden],
                0.0,
                proj(s.hidden),
            ),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![s.hidden, s.intermediate],
                0.0,
                proj(s.intermediate),
            ),
            (
                format!("{p}.input_layernorm.weight"),
                vec![s.hidden],
                0.0,
                0.2,
            ),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vec![s.hidden],
                0.0,
                0.2,
            ),
            (
                format!("{p}.pre_feedforward_layernorm.weight"),
                vec![s.hidden],
                0.0,
                0.2,
            ),
            (
                format!("{p}.post_feedforward_layernorm.weight"),
                vec![s.hidden],
                0.0,
                0.2,
            ),
        ]);
    }
    out.push(("norm.weight".to_string(), vec![s.hidden], 0.0, 0.2));
    out
}

/// A few vision-tower tensors, as a multimodal Hub file has; the text engine must skip them.
fn vision_tensors(s: &Shape) -> Vec<Spec> {
    let v = VISION_CONFIG["hidden_size"].as_u64().unwrap_or(32) as usize;
    let patch = VISION_CONFIG["patch_size"].as_u64().unwrap_or(8) as usize;
    vec![
        (
            "vision_tower.vision_model.embeddings.patch_embedding.weight".into(),
            vec![v, 3, patch, patch],
            0.0,
            0.02,
        ),
        (
            "vision_tower.vision_model.embeddings.patch_embedding.bias".into(),
            vec![v],
            0.0,
            0.02,
        ),
        (
            "multi_modal_projector.mm_input_projection_weight".into(),
            vec![v, s.hidden],
            0.0,
            0.02,
        ),
        (
            "multi_modal_projector.mm_soft_emb_norm.weight".into(),
            vec![v],
            0.0,
            0.02,
        ),
    ]
}

pub fn safetensors(s: &Shape, prefix: &str, vision: bool, seed: u64) -> Result<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut specs: Vec<Spec> = text_tensors(s)
        .into_iter()
        .map(|(n, shape, mean, std)| (format!("{prefix}{n}"), shape, mean, std))
        .collect();
    if vision {
        specs.extend(vision_tensors(s));
    }
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = specs
        .into_iter()
        .map(|(name, shape, mean, std)| {
            let normal = Normal::new(mean, std).expect("a positive std");
            let n: usize = shape.iter().product();
            let bytes = (0..n)
                .flat_map(|_| normal.sample(&mut rng).to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    Ok(safetensors::serialize(views, Some(metadata))?)
}
