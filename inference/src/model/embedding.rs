//! The token embeddings, dense or quantized, and the LM head that shares them when the
//! checkpoint ties the two.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::load::weights::Weights;
use crate::model::linear::Linear;
use crate::ops;
use crate::ops::quant::QWeight;

pub enum Embedding {
    /// `(vocab, hidden)` in the model dtype.
    Dense(Tensor),
    /// `(vocab, hidden)` in a GGUF file's block format.
    Quantized(QWeight),
}

impl Embedding {
    /// `embed_tokens.weight`, kept in its block format when the checkpoint stores it so.
    pub fn load(weights: &Weights, vocab: usize, hidden: usize) -> Result<Self> {
        let name = "embed_tokens.weight";
        if let Some(q) = weights.get_quantized(&[(name, vocab)], hidden)? {
            return Ok(Self::Quantized(q));
        }
        Ok(Self::Dense(weights.get(name, &[vocab, hidden])?))
    }

    /// The LM head of tied embeddings: the same weight.
    pub fn as_lm_head(&self) -> Linear {
        match self {
            Self::Dense(w) => Linear::Dense(w.clone()),
            Self::Quantized(q) => Linear::Quantized(q.clone()),
        }
    }

    /// The rows at `ids` (u32), in `dtype`.
    pub fn forward(&self, ids: &Tensor, dtype: DType) -> Result<Tensor> {
        match self {
            Self::Dense(w) => ops::index_select(w, ids, 0),
            Self::Quantized(q) => ops::cast(&ops::qembed(q, ids)?, dtype),
        }
    }
}
