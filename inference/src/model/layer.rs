//! One decoder layer: four norms around attention and the MLP.

use candle_core::Tensor;

use super::attention::{Attention, AttentionInputs};
use super::mlp::Mlp;
use super::norm::RmsNorm;
use crate::error::Result;
use crate::load::config::{LayerKind, TextConfig};
use crate::load::weights::Weights;
use crate::model::kv_cache::KvCache;
use crate::ops;

pub struct DecoderLayer {
    pub kind: LayerKind,
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    pre_feedforward_norm: RmsNorm,
    mlp: Mlp,
    post_feedforward_norm: RmsNorm,
}

impl DecoderLayer {
    pub fn load(weights: &Weights, index: usize, cfg: &TextConfig) -> Result<Self> {
        let p = format!("layers.{index}");
        let norm = |n: &str| {
            RmsNorm::load(
                weights,
                &format!("{p}.{n}.weight"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )
        };
        Ok(Self {
            kind: cfg.layer_kinds[index],
            input_norm: norm("input_layernorm")?,
            attention: Attention::load(weights, &format!("{p}.self_attn"), cfg)?,
            post_attention_norm: norm("post_attention_layernorm")?,
            pre_feedforward_norm: norm("pre_feedforward_layernorm")?,
            mlp: Mlp::load(weights, &format!("{p}.mlp"), cfg)?,
            post_feedforward_norm: norm("post_feedforward_layernorm")?,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        index: usize,
        cache: &mut KvCache,
        inputs: &AttentionInputs,
    ) -> Result<Tensor> {
        let attn = self
            .attention
            .forward(&self.input_norm.forward(x)?, index, cache, inputs)?;
        let x = ops::add(x, &self.post_attention_norm.forward(&attn)?)?;
        let mlp = self.mlp.forward(&self.pre_feedforward_norm.forward(&x)?)?;
        ops::add(&x, &self.post_feedforward_norm.forward(&mlp)?)
    }
}
