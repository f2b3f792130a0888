//! Additive attention masks from absolute positions.

use std::ops::Range;

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::load::config::LayerKind;
use crate::ops;

/// The mask for queries at positions `queries` over keys at positions `keys`:
/// query i sees key j iff `0 <= i - j` and, on sliding layers, `i - j < window`. `None` when
/// every query sees every key, so decode steps add no mask.
pub fn attention_mask(
    kind: LayerKind,
    window: usize,
    queries: Range<usize>,
    keys: Range<usize>,
    device: &Device,
    dtype: DType,
) -> Result<Option<Tensor>> {
    let visible = |i: usize, j: usize| j <= i && (kind == LayerKind::Full || i - j < window);
    let mut all_visible = true;
    let (q_len, k_len) = (queries.len(), keys.len());
    let mut data = Vec::with_capacity(q_len * k_len);
    for i in queries {
        for j in keys.clone() {
            let v = visible(i, j);
            all_visible &= v;
            data.push(if v { 0.0f32 } else { f32::NEG_INFINITY });
        }
    }
    if all_visible {
        return Ok(None);
    }
    let mask =
        ops::source(Tensor::from_vec(data, (q_len, k_len), &Device::Cpu)?.to_device(device)?);
    Ok(Some(ops::cast(&mask, dtype)?))
}
