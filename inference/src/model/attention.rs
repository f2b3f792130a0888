//! Grouped-query self-attention with q/k norms, RoPE and a KV cache.

use candle_core::Tensor;

use super::linear::Linear;
use super::norm::RmsNorm;
use crate::error::Result;
use crate::load::config::TextConfig;
use crate::load::weights::Weights;
use crate::model::kv_cache::KvCache;
use crate::ops;

pub struct Attention {
    /// q, k and v projections in one: a single kernel, and one pass over the input.
    qkv_proj: Linear,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// The query scale, where `q_norm` could not absorb it exactly.
    scale: Option<f64>,
}

/// Per-call inputs shared by every layer of one kind.
pub struct AttentionInputs<'a> {
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub mask: Option<&'a Tensor>,
}

impl Attention {
    pub fn load(weights: &Weights, prefix: &str, cfg: &TextConfig) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let name = |s: &str| format!("{prefix}.{s}");
        // A power-of-two scale (every released size but 27B) folds into q_norm exactly,
        // saving a launch per layer.
        let scale = cfg.query_pre_attn_scalar.powf(-0.5);
        let (folded, scale) = if is_power_of_two(scale) {
            (scale, None)
        } else {
            (1.0, Some(scale))
        };
        Ok(Self {
            qkv_proj: Linear::load_stacked(
                weights,
                &[
                    (&name("q_proj.weight"), nq * d),
                    (&name("k_proj.weight"), nkv * d),
                    (&name("v_proj.weight"), nkv * d),
                ],
                h,
            )?,
            o_proj: Linear::load(weights, &name("o_proj.weight"), h, nq * d)?,
            q_norm: RmsNorm::load_scaled(
                weights,
                &name("q_norm.weight"),
                d,
                cfg.rms_norm_eps,
                folded,
            )?,
            k_norm: RmsNorm::load(weights, &name("k_norm.weight"), d, cfg.rms_norm_eps)?,
            heads: nq,
            kv_heads: nkv,
            head_dim: d,
            scale,
        })
    }

    /// `(b, t, heads * d)` projections, a slice of the fused output, to normalised
    /// `(b, heads, t, d)`. The slice is contiguous for a single token.
    fn heads_of(&self, x: &Tensor, heads: usize, norm: Option<&RmsNorm>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let mut y = ops::contiguous(x)?.reshape((b, t, heads, self.head_dim))?;
        if let Some(norm) = norm {
            y = norm.forward(&y)?;
        }
        ops::contiguous(&y.transpose(1, 2)?)
    }

    pub fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        cache: &mut KvCache,
        inputs: &AttentionInputs,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let qkv = self.qkv_proj.forward(x)?;
        let (q_dim, kv_dim) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let q = qkv.narrow(2, 0, q_dim)?;
        let k = qkv.narrow(2, q_dim, kv_dim)?;
        let v = qkv.narrow(2, q_dim + kv_dim, kv_dim)?;
        let q = self.heads_of(&q, self.heads, Some(&self.q_norm))?;
        let k = self.heads_of(&k, self.kv_heads, Some(&self.k_norm))?;
        let v = self.heads_of(&v, self.kv_heads, None)?;
        let q = ops::rope(&q, inputs.cos, inputs.sin)?;
        let k = ops::rope(&k, inputs.cos, inputs.sin)?;
        let kv = cache.append(layer, k, v)?;
        let tk = kv.k.dim(2)?;

        // Grouped queries share their kv head: fold the group into the row dim of one matmul
        // instead of copying keys and values per query head.
        let groups = self.heads / self.kv_heads;
        let q = match self.scale {
            Some(scale) => ops::affine(&q, scale, 0.0)?,
            None => q,
        };
        let q = q.reshape((b, self.kv_heads, groups * t, self.head_dim))?;
        let scores = ops::matmul(&q, &kv.k.t()?)?.reshape((b, self.heads, t, tk))?;
        let scores = match inputs.mask {
            Some(mask) => ops::broadcast_add(&scores, mask)?,
            None => scores,
        };
        // Softmax works in f32 inside on every backend, as transformers' upcast does.
        let probs = ops::softmax_last_dim(&scores)?.reshape((b, self.kv_heads, groups * t, tk))?;
        let out = ops::matmul(&probs, &kv.v)?.reshape((b, self.heads, t, self.head_dim))?;
        let out =
            ops::contiguous(&out.transpose(1, 2)?)?.reshape((b, t, self.heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

fn is_power_of_two(x: f64) -> bool {
    x.is_normal() && x > 0.0 && x.to_bits() & ((1u64 << 52) - 1) == 0
}

#[cfg(test)]
mod tests {
    use super::is_power_of_two;

    #[test]
    fn only_exact_powers_of_two_fold() {
        assert!(is_power_of_two(256f64.powf(-0.5)));
        assert!(is_power_of_two(1.0));
        assert!(!is_power_of_two(168f64.powf(-0.5)));
        assert!(!is_power_of_two(0.0));
        assert!(!is_power_of_two(-0.25));
    }
}
