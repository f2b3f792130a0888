//! Gemma 3's text model, following transformers' `Gemma3TextModel` / `Gemma3ForCausalLM`.

mod attention;
mod embedding;
pub mod kv_cache;
mod layer;
mod linear;
pub mod mask;
mod mlp;
mod norm;
pub mod rope;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::load::config::{LayerKind, ModelConfig, TextConfig};
use crate::load::weights::Weights;
use crate::ops;
use attention::AttentionInputs;
use embedding::Embedding;
pub use kv_cache::KvCache;
use layer::DecoderLayer;
use linear::Linear;
use norm::RmsNorm;
use rope::RopeTables;

/// Which positions the forward pass returns logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every position of the call, for scoring.
    All,
    /// The last position only, for generation.
    Last,
}

pub struct Gemma3 {
    cfg: TextConfig,
    embed: Embedding,
    embed_scale: f64,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope_full: RopeTables,
    rope_sliding: RopeTables,
    device: Device,
    dtype: DType,
}

impl Gemma3 {
    pub fn load(cfg: &ModelConfig, weights: &Weights) -> Result<Self> {
        let text = &cfg.text;
        let embed = Embedding::load(weights, text.vocab_size, text.hidden_size)?;
        let lm_head = if text.tie_word_embeddings {
            embed.as_lm_head()
        } else {
            Linear::Dense(
                weights.get_exact(&cfg.lm_head_name, &[text.vocab_size, text.hidden_size])?,
            )
        };
        let layers = (0..text.num_hidden_layers)
            .map(|i| DecoderLayer::load(weights, i, text))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: text.clone(),
            embed_scale: round_to(weights.dtype(), (text.hidden_size as f64).sqrt()),
            embed,
            layers,
            norm: RmsNorm::load(weights, "norm.weight", text.hidden_size, text.rms_norm_eps)?,
            lm_head,
            rope_full: RopeTables::new(&text.rope_full, text.head_dim),
            rope_sliding: RopeTables::new(&text.rope_sliding, text.head_dim),
            device: weights.device().clone(),
            dtype: weights.dtype(),
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(&self.cfg)
    }

    /// Runs `tokens` at the cache's next positions and returns f32 logits of shape
    /// `(positions, vocab)`. On error the cache is left as it was only for context overflow,
    /// which is checked before any work.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        let t = tokens.len();
        if t == 0 {
            return Err(Error::Invalid("forward needs at least one token".into()));
        }
        let start = cache.position();
        let needed = start + t;
        if needed > self.cfg.max_position_embeddings {
            return Err(Error::ContextOverflow {
                needed,
                max: self.cfg.max_position_embeddings,
            });
        }
        if let Some(&bad) = tokens
            .iter()
            .find(|&&id| id as usize >= self.cfg.vocab_size)
        {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary of {} entries",
                self.cfg.vocab_size
            )));
        }
        if self.device.is_cpu() && !ops::bound_to_this_thread() {
            // On one of the pool's threads, so that each kernel's parallel loop starts and ends
            // there: from this thread, every one of them (hundreds a token) handed its work to
            // the pool and slept until it was done. A trace or a fallback lives on this thread,
            // so it keeps the step here.
            return rayon::scope(|_| self.run(tokens, start, cache, logits));
        }
        self.run(tokens, start, cache, logits)
    }

    /// [`Self::forward`] after its checks, from position `start`.
    fn run(
        &self,
        tokens: &[u32],
        start: usize,
        cache: &mut KvCache,
        logits: Logits,
    ) -> Result<Tensor> {
        let t = tokens.len();
        let ids = ops::source(Tensor::new(tokens, &self.device)?);
        let x = self.embed.forward(&ids, self.dtype)?;
        let mut x = ops::affine(&x, self.embed_scale, 0.0)?.unsqueeze(0)?;

        let (full, sliding) = (
            self.kind_inputs(LayerKind::Full, &self.rope_full, start, t)?,
            self.kind_inputs(LayerKind::Sliding, &self.rope_sliding, start, t)?,
        );
        for (i, layer) in self.layers.iter().enumerate() {
            let inputs = match layer.kind {
                LayerKind::Full => &full,
                LayerKind::Sliding => &sliding,
            };
            x = layer.forward(&x, i, cache, &inputs.as_inputs())?;
        }
        cache.advance(t);

        let x = match logits {
            Logits::All => x,
            Logits::Last => ops::contiguous(&x.narrow(1, t - 1, 1)?)?,
        };
        let x = self.norm.forward(&x)?;
        let mut out = self.lm_head.forward(&x)?;
        if let Some(cap) = self.cfg.final_logit_softcapping {
            out = ops::affine(&ops::tanh(&ops::affine(&out, 1.0 / cap, 0.0)?)?, cap, 0.0)?;
        }
        let out = ops::cast(&out, DType::F32)?;
        let rows = out.dim(1)?;
        Ok(out.reshape((rows, self.cfg.vocab_size))?)
    }

    fn kind_inputs(
        &self,
        kind: LayerKind,
        rope: &RopeTables,
        start: usize,
        t: usize,
    ) -> Result<KindInputs> {
        let (cos, sin) = rope.at(start, t, &self.device, self.dtype)?;
        // Keys this kind attends to: what its cache keeps (see `KvCache`) plus this call's.
        let k_start = match kind {
            LayerKind::Full => 0,
            LayerKind::Sliding => start.saturating_sub(self.cfg.sliding_window - 1),
        };
        let mask = mask::attention_mask(
            kind,
            self.cfg.sliding_window,
            start..start + t,
            k_start..start + t,
            &self.device,
            self.dtype,
        )?;
        Ok(KindInputs { cos, sin, mask })
    }
}

struct KindInputs {
    cos: Tensor,
    sin: Tensor,
    mask: Option<Tensor>,
}

impl KindInputs {
    fn as_inputs(&self) -> AttentionInputs<'_> {
        AttentionInputs {
            cos: &self.cos,
            sin: &self.sin,
            mask: self.mask.as_ref(),
        }
    }
}

/// `x` rounded to `dtype`, so that a scale multiplies exactly as transformers' does.
fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::BF16 => half::bf16::from_f64(x).to_f64(),
        DType::F16 => half::f16::from_f64(x).to_f64(),
        DType::F32 => x as f32 as f64,
        _ => x,
    }
}
