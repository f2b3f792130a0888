//! Gemma's RMSNorm, `x / rms(x) * (1 + w)`. transformers computes it in f32 and rounds once;
//! Candle's kernel reads half inputs, accumulates in f32, and rounds once too, so the only
//! difference is `1 + w`, rounded to the model dtype here. That saves two dtype casts per
//! norm, six norms per layer: on a GPU, a third of all kernel launches of a decode step.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::load::weights::Weights;
use crate::ops;

pub struct RmsNorm {
    /// `1 + w`, computed in f32 and rounded to the model dtype.
    alpha: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn load(weights: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Self::load_scaled(weights, name, dim, eps, 1.0)
    }

    /// A norm whose output is also multiplied by `scale`, folded into `alpha`. Exact for a power
    /// of two, which commutes with rounding.
    pub fn load_scaled(
        weights: &Weights,
        name: &str,
        dim: usize,
        eps: f64,
        scale: f64,
    ) -> Result<Self> {
        // Round the weight to the model dtype first, as a checkpoint loaded in that dtype would be.
        let w = weights.get(name, &[dim])?;
        let alpha = ops::affine(&ops::cast(&w, DType::F32)?, scale, scale)?;
        Ok(Self {
            alpha: ops::cast(&alpha, w.dtype())?,
            eps: eps as f32,
        })
    }

    /// Normalises over the last dim; `x` must be contiguous.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, &self.alpha, self.eps)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::Device;

    use super::*;

    /// A folded power-of-two scale gives the very bits of scaling the norm's output after.
    #[test]
    fn a_power_of_two_scale_folds_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("norm.safetensors");
        let w = Tensor::randn(0f32, 0.5, 96, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("w".to_string(), w)]), &path).unwrap();
        let x = Tensor::randn(0f32, 2.0, (3, 96), &Device::Cpu).unwrap();
        for dtype in [DType::F32, DType::BF16] {
            let weights =
                Weights::open(std::slice::from_ref(&path), "", &Device::Cpu, dtype).unwrap();
            let x = ops::cast(&x, dtype).unwrap();
            let plain = RmsNorm::load(&weights, "w", 96, 1e-6).unwrap();
            let folded = RmsNorm::load_scaled(&weights, "w", 96, 1e-6, 0.0625).unwrap();
            let want = ops::affine(&plain.forward(&x).unwrap(), 0.0625, 0.0).unwrap();
            let got = folded.forward(&x).unwrap();
            let bits = |t: &Tensor| -> Vec<f32> {
                ops::cast(t, DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            assert_eq!(bits(&got), bits(&want), "{dtype:?}");
        }
    }
}
