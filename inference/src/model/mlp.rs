//! Gemma's gated MLP: `down(gelu_tanh(gate(x)) * up(x))`.

use candle_core::Tensor;

use super::linear::Linear;
use crate::error::Result;
use crate::load::config::TextConfig;
use crate::load::weights::Weights;
use crate::ops;

pub struct Mlp {
    /// gate and up projections in one: `(2 * intermediate, hidden)`.
    gate_up: Linear,
    down: Linear,
    intermediate: usize,
}

impl Mlp {
    pub fn load(weights: &Weights, prefix: &str, cfg: &TextConfig) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up: Linear::load_stacked(
                weights,
                &[
                    (&format!("{prefix}.gate_proj.weight"), i),
                    (&format!("{prefix}.up_proj.weight"), i),
                ],
                h,
            )?,
            down: Linear::load(weights, &format!("{prefix}.down_proj.weight"), h, i)?,
            intermediate: i,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate_up = self.gate_up.forward(x)?;
        let last = gate_up.rank() - 1;
        let gate = ops::gelu_tanh(&gate_up.narrow(last, 0, self.intermediate)?)?;
        let up = gate_up.narrow(last, self.intermediate, self.intermediate)?;
        let hidden = ops::mul(&gate, &up)?;
        self.down.forward(&hidden)
    }
}
