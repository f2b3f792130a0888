//! The products: batched `matmul` and the projections' `linear`.

use inference::ops::Op;
use proptest::prelude::*;

use super::{xwt, Host, OpSpec};
use crate::fuzz::{any_layout, dim, float, seed, tensor, FuzzCase, Layout};

/// Candle's matmul takes transposed and offset operands, not broadcast ones.
fn no_broadcast(l: Layout) -> Layout {
    if l == Layout::Broadcast {
        Layout::Contiguous
    } else {
        l
    }
}

pub struct Matmul;

impl OpSpec for Matmul {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            proptest::collection::vec(dim(), 0..=2),
            dim(),
            dim(),
            dim(),
            any_layout(),
            any_layout(),
            float(),
            seed(),
        )
            .prop_map(|(batch, m, k, n, la, lb, dt, s)| {
                let mut a = batch.clone();
                a.extend([m, k]);
                let mut b = batch;
                b.extend([k, n]);
                FuzzCase {
                    op: Op::Matmul,
                    inputs: vec![
                        tensor(&a, dt, no_broadcast(la), s),
                        tensor(&b, dt, no_broadcast(lb), s ^ 1),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let rank = a.dims.len();
        let (m, k, n) = (a.dims[rank - 2], a.dims[rank - 1], b.last());
        let batches = a.values.len() / (m * k);
        let mut out = Vec::with_capacity(batches * m * n);
        for p in 0..batches {
            let (a, b) = (&a.values[p * m * k..], &b.values[p * k * n..]);
            for i in 0..m {
                out.extend(
                    (0..n).map(|j| (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f64>()),
                );
            }
        }
        out
    }
}

pub struct Linear;

impl OpSpec for Linear {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            dim(),
            prop_oneof![dim(), 31usize..=97],
            dim(),
            any_layout(),
            any_layout(),
            float(),
            seed(),
        )
            .prop_map(|(m, k, n, lx, lw, dt, s)| {
                // k past one 32-lane vector, with a tail, reaches every path of the CPU kernel.
                FuzzCase {
                    op: Op::Linear,
                    inputs: vec![
                        tensor(&[m, k], dt, no_broadcast(lx), s),
                        tensor(&[n, k], dt, no_broadcast(lw), s ^ 1),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        let (x, w) = (&inputs[0], &inputs[1]);
        xwt(&x.values, &w.values, x.last())
    }
}
