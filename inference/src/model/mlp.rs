//! Gemma's gated MLP: `down(gelu_tanh(gate(x)) * up(x))`.

use candle_core::Tensor;

use super::linear::Linear;
use crate::config::TextConfig;
use crate::error::Result;
use crate::ops;
use crate::weights::Weights;

pub struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    pub fn load(weights: &Weights, prefix: &str, cfg: &TextConfig) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate: Linear::load(weights, &format!("{prefix}.gate_proj.weight"), i, h)?,
            up: Linear::load(weights, &format!("{prefix}.up_proj.weight"), i, h)?,
            down: Linear::load(weights, &format!("{prefix}.down_proj.weight"), h, i)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = ops::gelu_tanh(&self.gate.forward(x)?)?;
        let hidden = ops::mul(&gate, &self.up.forward(x)?)?;
        self.down.forward(&hidden)
    }
}
