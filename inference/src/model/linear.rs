//! A bias-free linear layer on the op vocabulary, over a dense or a quantized weight.

use candle_core::Tensor;

use crate::error::Result;
use crate::load::weights::Weights;
use crate::ops;
use crate::ops::quant::QWeight;

pub enum Linear {
    /// `(out, in)`, as stored in the checkpoint, in the model dtype.
    Dense(Tensor),
    /// `(out, in)` in a GGUF file's block format.
    Quantized(QWeight),
}

impl Linear {
    pub fn load(weights: &Weights, name: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Self::load_stacked(weights, &[(name, out_dim)], in_dim)
    }

    /// Several projections of the same input as one: their weights stacked, `(Σ out, in)`.
    /// Quantized where the checkpoint stores every part in one block format.
    pub fn load_stacked(weights: &Weights, parts: &[(&str, usize)], in_dim: usize) -> Result<Self> {
        if let Some(q) = weights.get_quantized(parts, in_dim)? {
            return Ok(Self::Quantized(q));
        }
        Ok(Self::Dense(weights.get_stacked(parts, in_dim)?))
    }

    fn out_dim(&self) -> Result<usize> {
        Ok(match self {
            Self::Dense(w) => w.dim(0)?,
            Self::Quantized(q) => q.dims()[0],
        })
    }

    /// `x @ W^T` for contiguous `x` of shape `(..., in)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let in_dim = dims.pop().unwrap_or(1);
        let rows: usize = dims.iter().product();
        let x = x.reshape((rows, in_dim))?;
        let y = match self {
            Self::Dense(w) => ops::linear(&x, w)?,
            Self::Quantized(q) => ops::qlinear(&x, q)?,
        };
        dims.push(self.out_dim()?);
        Ok(y.reshape(dims)?)
    }
}
