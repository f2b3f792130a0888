//! A bias-free linear layer on the op vocabulary.

use candle_core::Tensor;

use crate::error::Result;
use crate::load::weights::Weights;
use crate::ops;

pub struct Linear {
    /// `(out, in)`, as stored in the checkpoint.
    weight: Tensor,
}

impl Linear {
    pub fn load(weights: &Weights, name: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Ok(Self::new(weights.get(name, &[out_dim, in_dim])?))
    }

    /// Several projections of the same input as one: their weights stacked, `(Σ out, in)`.
    pub fn load_stacked(weights: &Weights, parts: &[(&str, usize)], in_dim: usize) -> Result<Self> {
        Ok(Self::new(weights.get_stacked(parts, in_dim)?))
    }

    pub fn new(weight: Tensor) -> Self {
        Self { weight }
    }

    /// `x @ W^T` for contiguous `x` of shape `(..., in)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let in_dim = dims.pop().unwrap_or(1);
        let rows: usize = dims.iter().product();
        let y = ops::linear(&x.reshape((rows, in_dim))?, &self.weight)?;
        dims.push(self.weight.dim(0)?);
        Ok(y.reshape(dims)?)
    }
}
