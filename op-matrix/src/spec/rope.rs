//! `rope`: rotate-half rotary embeddings, as Gemma uses them (not the interleaved variant).

use inference::ops::Op;
use proptest::prelude::*;

use super::{Host, OpSpec};
use crate::fuzz::{dim, float, seed, tensor, FuzzCase, Layout};

pub struct Rope;

impl OpSpec for Rope {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (dim(), dim(), dim(), 1..5usize, float(), seed())
            .prop_map(|(b, h, t, half, dt, s)| FuzzCase {
                op: Op::Rope,
                inputs: vec![
                    tensor(&[b, h, t, 2 * half], dt, Layout::Contiguous, s),
                    tensor(&[t, half], dt, Layout::Contiguous, s ^ 1),
                    tensor(&[t, half], dt, Layout::Contiguous, s ^ 2),
                ],
            })
            .boxed()
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        let (x, cos, sin) = (&inputs[0], &inputs[1].values, &inputs[2].values);
        let (t, d) = (x.dims[2], x.dims[3]);
        let half = d / 2;
        let mut out = vec![0.0; x.values.len()];
        for (r, row) in x.values.chunks(d).enumerate() {
            let pos = r % t;
            for i in 0..half {
                let (c, s) = (cos[pos * half + i], sin[pos * half + i]);
                out[r * d + i] = row[i] * c - row[i + half] * s;
                out[r * d + i + half] = row[i + half] * c + row[i] * s;
            }
        }
        out
    }
}
