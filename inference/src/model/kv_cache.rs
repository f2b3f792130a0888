//! Per-layer key/value caches: full for global layers, window-bounded for sliding layers.
//!
//! Each layer's keys and values live in a buffer with room to spare, and every call writes only
//! its own positions into it, in place ([`ops::write_at`]). Appending by concatenation would copy
//! the whole cache twice per layer per token: launches on a GPU, and bytes that grow with the
//! context everywhere. A full buffer is replaced by one twice as large; a sliding layer's buffer
//! grows so too up to three windows, then is compacted to two windows when it fills, so both
//! copy O(1) rows per token on average, and a short context holds no more than it uses (three
//! windows at once were 77 MB of a 1B's f32 cache at 160 positions). The
//! second window lets a chat turn roll the cache back into the last reply
//! ([`KvCache::roll_back`]) without reading the history again.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::load::config::{LayerKind, TextConfig};
use crate::ops;

/// The smallest buffer, in positions.
const MIN_CAPACITY: usize = 16;

/// A sliding layer's buffer holds at most this many windows (and a call's positions twice).
pub const SLIDING_WINDOWS_HELD: usize = 3;

/// Keys and values of one layer, `(batch, kv_heads, capacity, head_dim)`; row `r` holds
/// position `start + r`, up to the cache's position.
#[derive(Default)]
struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
    start: usize,
}

/// The cache of every layer, and the number of positions consumed so far.
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// Keys a sliding layer must keep for the next call: `window - 1` (the query itself is new).
    keep: Vec<Option<usize>>,
    max_positions: usize,
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
            layers: (0..cfg.num_hidden_layers)
                .map(|_| LayerCache::default())
                .collect(),
            keep: cfg
                .layer_kinds
                .iter()
                .map(|k| match k {
                    LayerKind::Sliding => Some(cfg.sliding_window - 1),
                    LayerKind::Full => None,
                })
                .collect(),
            max_positions: cfg.max_position_embeddings,
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

    /// Rolls the cache back to `position`, no later than now, where every layer still holds
    /// what the next call there attends to (a sliding layer's window before it); rows past
    /// it are written over by later calls. False, with nothing changed, where a layer no longer
    /// holds them.
    pub fn roll_back(&mut self, position: usize) -> bool {
        let held = position <= self.position
            && self.layers.iter().zip(&self.keep).all(|(layer, keep)| {
                let first = keep.map_or(0, |keep| position.saturating_sub(keep));
                layer.kv.is_none() || layer.start <= first
            });
        if held {
            self.position = position;
        }
        held
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.position += n;
    }

    /// Writes this call's keys and values (at positions `position..`) into layer `layer`, and
    /// returns what the layer attends to: for a sliding layer the last `window - 1` earlier
    /// positions and this call's, for a full layer every position so far.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<Attended> {
        let (position, t) = (self.position, k.dim(2)?);
        let first = self.keep[layer].map_or(0, |keep| position.saturating_sub(keep));
        let end = position + t;
        let cache = &mut self.layers[layer];
        let capacity = match &cache.kv {
            Some((ck, _)) => ck.dim(2)?,
            None => 0,
        };
        if cache.kv.is_none() || end - cache.start > capacity {
            // A full layer gets room for this call and as many positions again; a sliding
            // layer keeps two windows before the call, and room for another and the call twice.
            let (kept_from, wanted) = match self.keep[layer] {
                None => (0, (end - first).next_power_of_two()),
                Some(keep) => {
                    let kept_from = position.saturating_sub(2 * keep).max(cache.start);
                    let most = SLIDING_WINDOWS_HELD * keep + 2 * t;
                    (kept_from, (end - kept_from).next_power_of_two().min(most))
                }
            };
            // Never past the context, even one shorter than MIN_CAPACITY.
            let capacity = wanted.max(MIN_CAPACITY).min(self.max_positions.max(t));
            *cache = moved(cache, kept_from, position, capacity, &k)?;
        }
        let (ck, cv) = cache.kv.take().expect("the buffer was made above");
        let row = position - cache.start;
        let ck = ops::write_at(&ck, &ops::contiguous(&k)?, 2, row)?;
        let cv = ops::write_at(&cv, &ops::contiguous(&v)?, 2, row)?;
        let (from, len) = (first - cache.start, end - first);
        let attended = Attended {
            k: ck.narrow(2, from, len)?,
            v: cv.narrow(2, from, len)?,
            start: first,
        };
        cache.kv = Some((ck, cv));
        Ok(attended)
    }
}

/// A new buffer of `capacity` positions holding the rows of `cache` for positions
/// `first..position`, at its start.
fn moved(
    cache: &LayerCache,
    first: usize,
    position: usize,
    capacity: usize,
    like: &Tensor,
) -> Result<LayerCache> {
    let (b, heads, _, d) = like.dims4()?;
    let empty = |dtype: DType, device: &Device| -> Result<Tensor> {
        Ok(ops::source(Tensor::zeros(
            (b, heads, capacity, d),
            dtype,
            device,
        )?))
    };
    let mut k = empty(like.dtype(), like.device())?;
    let mut v = empty(like.dtype(), like.device())?;
    if let Some((ck, cv)) = &cache.kv {
        let kept = position - first;
        if kept > 0 {
            let from = first - cache.start;
            k = ops::write_at(&k, &ops::contiguous(&ck.narrow(2, from, kept)?)?, 2, 0)?;
            v = ops::write_at(&v, &ops::contiguous(&cv.narrow(2, from, kept)?)?, 2, 0)?;
        }
    }
    Ok(LayerCache {
        kv: Some((k, v)),
        start: first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values of `t` positions, one head of 4.
    fn kv(t: usize) -> Tensor {
        Tensor::zeros((1, 1, t, 4), DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn a_sliding_layer_holds_what_its_context_uses_up_to_three_windows() {
        let window = 512;
        let mut cache = KvCache {
            layers: vec![LayerCache::default()],
            keep: vec![Some(window - 1)],
            max_positions: 1 << 20,
            position: 0,
        };
        let step = |cache: &mut KvCache, t: usize| {
            cache.append(0, kv(t), kv(t)).unwrap();
            cache.advance(t);
            cache.layers[0].kv.as_ref().unwrap().0.dim(2).unwrap()
        };
        assert_eq!(step(&mut cache, 10), MIN_CAPACITY);
        let held: Vec<usize> = (0..3000).map(|_| step(&mut cache, 1)).collect();
        assert_eq!(held[100], 128, "110 positions");
        assert!(held.iter().all(|&c| c <= 3 * (window - 1) + 2), "{held:?}");
    }
}
