//! The normalizations: `rms_norm` and `softmax_last_dim`.

use inference::ops::Op;
use proptest::prelude::*;

use super::{Host, OpSpec};
use crate::fuzz::{float, masked_scores, seed, shape, tensor, FuzzCase, Layout};

pub struct RmsNorm;

impl OpSpec for RmsNorm {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (shape(3), float(), seed())
            .prop_map(|(sh, dt, s)| {
                let h = *sh.last().expect("rank >= 1");
                FuzzCase {
                    op: Op::RmsNorm { eps: 1e-6 },
                    inputs: vec![
                        tensor(&sh, dt, Layout::Contiguous, s),
                        tensor(&[h], dt, Layout::Contiguous, s ^ 1),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::RmsNorm { eps } = *op else {
            unreachable!("the rms_norm spec gets rms_norm ops")
        };
        let (x, alpha) = (&inputs[0], &inputs[1].values);
        x.values
            .chunks(x.last())
            .flat_map(|row| {
                let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
                let scale = 1.0 / (ms + eps as f64).sqrt();
                row.iter().zip(alpha).map(move |(v, a)| v * scale * a)
            })
            .collect()
    }
}

pub struct SoftmaxLastDim;

impl OpSpec for SoftmaxLastDim {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (shape(4), float(), seed(), any::<bool>())
            .prop_map(|(sh, dt, s, masked)| FuzzCase {
                op: Op::SoftmaxLastDim,
                inputs: vec![if masked {
                    masked_scores(&sh, dt, s)
                } else {
                    tensor(&sh, dt, Layout::Contiguous, s)
                }],
            })
            .boxed()
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        let x = &inputs[0];
        x.values
            .chunks(x.last())
            .flat_map(|row| {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / sum)
            })
            .collect()
    }
}
