//! `qlinear`: the projection over quantized weights, in every block format. The reference
//! dequantizes the blocks as the format defines them (Candle's CPU dequantizer) and takes the
//! product in f64; the kernels may also quantize the activations, as llama.cpp's do.

use candle_core::{Device, Tensor};
use inference::ops::quant::{self, QuantType};
use inference::ops::Op;
use proptest::prelude::*;

use super::{xwt, Host, OpSpec};
use crate::fuzz::{dim, float, seed, tensor, FuzzCase, Layout};

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
                let w = tensor(&[n, k], candle_core::DType::F32, Layout::Contiguous, s ^ 1);
                FuzzCase {
                    op: Op::QLinear { quant: q },
                    inputs: vec![
                        tensor(&[m, k], dt, Layout::Contiguous, s),
                        quant::quantize(&w, q).expect("whole blocks by construction"),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::QLinear { quant } = *op else {
            unreachable!("the qlinear spec gets qlinear ops")
        };
        let (x, blocks) = (&inputs[0], &inputs[1]);
        let bytes: Vec<u8> = blocks.values.iter().map(|&b| b as u8).collect();
        let blocks = Tensor::from_vec(bytes, blocks.dims.as_slice(), &Device::Cpu)
            .expect("the case's own shape");
        let w = quant::dequantize(&blocks, quant).expect("the case's own blocks");
        let w = Host::of(&w).expect("an f32 tensor on the CPU");
        xwt(&x.values, &w.values, x.last())
    }
}
