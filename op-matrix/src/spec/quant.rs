//! `qlinear` and `qembed`: the projection over quantized weights and the lookup of quantized
//! rows, in every block format. The references dequantize the blocks as the format defines
//! them (Candle's CPU dequantizer) and compute in f64; `qlinear`'s kernels may also quantize
//! the activations, as llama.cpp's do.

use candle_core::{DType, Device, Tensor};
use inference::ops::quant::{self, QuantType};
use inference::ops::Op;
use proptest::prelude::*;

use super::{xwt, Host, OpSpec};
use crate::fuzz::{dim, float, seed, tensor, FuzzCase, Layout};

/// The blocks of a random `(n, k)` matrix in format `q`.
fn blocks(n: usize, k: usize, q: QuantType, seed: u64) -> Tensor {
    let w = tensor(&[n, k], DType::F32, Layout::Contiguous, seed ^ 1);
    quant::quantize(&w, q).expect("whole blocks by construction")
}

/// The matrix that the blocks `blocks` (a case's input) hold.
fn dequantized(blocks: &Host, q: QuantType) -> Host {
    let bytes: Vec<u8> = blocks.values.iter().map(|&b| b as u8).collect();
    let blocks = Tensor::from_vec(bytes, blocks.dims.as_slice(), &Device::Cpu)
        .expect("the case's own shape");
    let w = quant::dequantize(&blocks, q).expect("the case's own blocks");
    Host::of(&w).expect("an f32 tensor on the CPU")
}

pub struct QLinear;

impl OpSpec for QLinear {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            dim(),
            dim(),
            1..=3usize,
            proptest::sample::select(QuantType::ALL.to_vec()),
            float(),
            seed(),
        )
            .prop_map(|(m, n, pairs, q, dt, s)| {
                // Pairs of blocks: Candle's CPU kernels for the 32-weight formats take two
                // blocks a step (a debug assertion enforces it); model rows always have whole
                // pairs (1152 = 36 blocks of 32 in the 1B).
                let k = 2 * pairs * q.block_len();
                FuzzCase {
                    op: Op::QLinear { quant: q },
                    inputs: vec![
                        tensor(&[m, k], dt, Layout::Contiguous, s),
                        blocks(n, k, q, s),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::QLinear { quant } = *op else {
            unreachable!("the qlinear spec gets qlinear ops")
        };
        let (x, w) = (&inputs[0], dequantized(&inputs[1], quant));
        xwt(&x.values, &w.values, x.last())
    }
}

pub struct QEmbed;

impl OpSpec for QEmbed {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            dim(),
            dim(),
            1..=2usize,
            proptest::sample::select(QuantType::ALL.to_vec()),
            seed(),
        )
            .prop_map(|(rows, n, pairs, q, s)| {
                let hidden = 2 * pairs * q.block_len();
                let ids: Vec<u32> = (0..n)
                    .map(|i| ((s as usize + i * 7) % rows) as u32)
                    .collect();
                FuzzCase {
                    op: Op::QEmbed { quant: q },
                    inputs: vec![
                        blocks(rows, hidden, q, s),
                        Tensor::from_vec(ids, n, &Device::Cpu).expect("ids"),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::QEmbed { quant } = *op else {
            unreachable!("the qembed spec gets qembed ops")
        };
        let (w, ids) = (dequantized(&inputs[0], quant), &inputs[1]);
        let hidden = w.last();
        ids.values
            .iter()
            .flat_map(|&id| w.values[id as usize * hidden..][..hidden].iter().copied())
            .collect()
    }
}
