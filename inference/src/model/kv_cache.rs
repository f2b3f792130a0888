//! Per-layer key/value caches: full for global layers, window-bounded for sliding layers.

use candle_core::Tensor;

use crate::config::{LayerKind, TextConfig};
use crate::error::Result;
use crate::ops;

/// Keys and values of one layer, `(batch, kv_heads, len, head_dim)`, for positions
/// `start..start + len`.
#[derive(Clone, Default)]
struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
    start: usize,
}

/// The cache of every layer, and the number of positions consumed so far.
#[derive(Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// Keys a sliding layer must keep for the next call: `window - 1` (the query itself is new).
    keep: Vec<Option<usize>>,
    position: usize,
}

/// Keys and values a layer attends to in this call, with the position of the first key.
pub struct Attended {
    pub k: Tensor,
    pub v: Tensor,
    pub start: usize,
}

impl KvCache {
    pub fn new(cfg: &TextConfig) -> Self {
        Self {
            layers: vec![LayerCache::default(); cfg.num_hidden_layers],
            keep: cfg
                .layer_kinds
                .iter()
                .map(|k| match k {
                    LayerKind::Sliding => Some(cfg.sliding_window - 1),
                    LayerKind::Full => None,
                })
                .collect(),
            position: 0,
        }
    }

    /// Positions consumed so far; the next token goes at this position.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn reset(&mut self) {
        self.layers
            .iter_mut()
            .for_each(|l| *l = LayerCache::default());
        self.position = 0;
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.position += n;
    }

    /// Appends this call's keys and values (at positions `position..`) to layer `layer`, and
    /// returns what the layer attends to. Sliding layers then drop keys no later query can see.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<Attended> {
        let cache = &mut self.layers[layer];
        let (k, v, start) = match cache.kv.take() {
            None => (k, v, self.position),
            Some((ck, cv)) => (
                ops::cat(&[&ck, &k], 2)?,
                ops::cat(&[&cv, &v], 2)?,
                cache.start,
            ),
        };
        let len = k.dim(2)?;
        let kept = self.keep[layer].map_or(len, |keep| keep.min(len));
        if kept > 0 {
            let from = len - kept;
            cache.kv = Some((k.narrow(2, from, kept)?, v.narrow(2, from, kept)?));
            cache.start = start + from;
        }
        Ok(Attended { k, v, start })
    }
}
