//! Gemma's RMSNorm: computed in f32 with `(1 + w)`, then cast back, as transformers does.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::ops;
use crate::weights::Weights;

pub struct RmsNorm {
    /// `1 + w`, in f32.
    alpha: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn load(weights: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        // Round the weight to the model dtype first, as a checkpoint loaded in that dtype would be.
        let w = ops::cast(&weights.get(name, &[dim])?, DType::F32)?;
        Ok(Self {
            alpha: ops::affine(&w, 1.0, 1.0)?,
            eps: eps as f32,
        })
    }

    /// Normalises over the last dim; `x` must be contiguous.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let y = ops::rms_norm(&ops::cast(x, DType::F32)?, &self.alpha, self.eps)?;
        ops::cast(&y, dtype)
    }
}
