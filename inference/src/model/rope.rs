//! Rotary position tables, built in f32 on the host for the positions of each call and then
//! cast to the model dtype, as transformers does. Building them per call keeps exact f32
//! positions (no bf16 rounding of large positions) without a table of the whole context.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::load::config::Rope;
use crate::ops;

pub struct RopeTables {
    inv_freq: Vec<f32>,
}

impl RopeTables {
    pub fn new(rope: &Rope, head_dim: usize) -> Self {
        let theta = rope.theta as f32;
        let factor = rope.linear_factor as f32;
        let inv_freq = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / head_dim as f32) / factor)
            .collect();
        Self { inv_freq }
    }

    /// `(cos, sin)` of shape `(len, head_dim / 2)` for positions `start..start + len`.
    pub fn at(
        &self,
        start: usize,
        len: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in start..start + len {
            for &f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let to = |v: Vec<f32>| -> Result<Tensor> {
            let t = ops::source(Tensor::from_vec(v, (len, half), &Device::Cpu)?.to_device(device)?);
            ops::cast(&t, dtype)
        };
        Ok((to(cos)?, to(sin)?))
    }
}
