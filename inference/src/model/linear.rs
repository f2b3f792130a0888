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
    /// Stacked projections whose parts a GGUF file stores in different block formats (as
    /// llama.cpp's mixes do: Q4_K queries beside Q6_K values), each kept in its own; their
    /// outputs are concatenated.
    Parts(Vec<QWeight>),
}

impl Linear {
    pub fn load(weights: &Weights, name: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Self::load_stacked(weights, &[(name, out_dim)], in_dim)
    }

    /// Several projections of the same input as one: their weights stacked, `(Σ out, in)`.
    /// Quantized where the checkpoint stores every part in one block format, or each part in
    /// its own; dense (in the model dtype) otherwise.
    pub fn load_stacked(weights: &Weights, parts: &[(&str, usize)], in_dim: usize) -> Result<Self> {
        if let Some(q) = weights.get_quantized(parts, in_dim)? {
            return Ok(Self::Quantized(q));
        }
        if parts.len() > 1 {
            let each = parts
                .iter()
                .map(|part| weights.get_quantized(std::slice::from_ref(part), in_dim))
                .collect::<Result<Option<Vec<QWeight>>>>()?;
            if let Some(each) = each {
                return Ok(Self::Parts(each));
            }
        }
        Ok(Self::Dense(weights.get_stacked(parts, in_dim)?))
    }

    fn out_dim(&self) -> Result<usize> {
        Ok(match self {
            Self::Dense(w) => w.dim(0)?,
            Self::Quantized(q) => q.dims()[0],
            Self::Parts(parts) => parts.iter().map(|q| q.dims()[0]).sum(),
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
            Self::Parts(parts) => {
                let ys = parts
                    .iter()
                    .map(|q| ops::qlinear(&x, q))
                    .collect::<Result<Vec<_>>>()?;
                ops::cat(&ys.iter().collect::<Vec<_>>(), 1)?
            }
        };
        dims.push(self.out_dim()?);
        Ok(y.reshape(dims)?)
    }
}
