//! Element-wise ops: `add`, `mul`, `broadcast_add`, `affine`, `gelu_tanh`, `tanh`, `cast`.

use inference::ops::Op;
use proptest::prelude::*;

use super::{Host, OpSpec};
use crate::fuzz::{any_layout, float, seed, shape, tensor, FuzzCase, Layout};

/// Random cases of a one-input op over any shape and layout.
fn unary(op: Op) -> BoxedStrategy<FuzzCase> {
    (shape(4), any_layout(), float(), seed())
        .prop_map(move |(sh, l, dt, s)| FuzzCase {
            op: op.clone(),
            inputs: vec![tensor(&sh, dt, l, s)],
        })
        .boxed()
}

/// Random cases of a two-input op over equal shapes in any layouts.
fn binary(op: Op) -> BoxedStrategy<FuzzCase> {
    (shape(4), any_layout(), any_layout(), float(), seed())
        .prop_map(move |(sh, la, lb, dt, s)| FuzzCase {
            op: op.clone(),
            inputs: vec![tensor(&sh, dt, la, s), tensor(&sh, dt, lb, s ^ 1)],
        })
        .boxed()
}

fn zip(inputs: &[Host], f: fn(f64, f64) -> f64) -> Vec<f64> {
    let (a, b) = (&inputs[0].values, &inputs[1].values);
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

fn map(inputs: &[Host], f: impl Fn(f64) -> f64) -> Vec<f64> {
    inputs[0].values.iter().map(|&x| f(x)).collect()
}

pub struct Add;

impl OpSpec for Add {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        binary(Op::Add)
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        zip(inputs, |a, b| a + b)
    }
}

pub struct Mul;

impl OpSpec for Mul {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        binary(Op::Mul)
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        zip(inputs, |a, b| a * b)
    }
}

pub struct BroadcastAdd;

impl OpSpec for BroadcastAdd {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (shape(4), any_layout(), float(), seed(), any::<u8>())
            .prop_map(|(sh, la, dt, s, mask)| {
                // The right side keeps a suffix of the dims, some of them collapsed to 1.
                let keep = 1 + (mask as usize % sh.len());
                let rhs: Vec<usize> = sh[sh.len() - keep..]
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if mask >> (i + 3) & 1 == 1 { 1 } else { d })
                    .collect();
                FuzzCase {
                    op: Op::BroadcastAdd,
                    inputs: vec![
                        tensor(&sh, dt, la, s),
                        tensor(&rhs, dt, Layout::Contiguous, s ^ 1),
                    ],
                }
            })
            .boxed()
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        let (a, b) = (&inputs[0], &inputs[1]);
        // b's dims align with a's last ones; a dim of 1 repeats.
        let skip = a.dims.len() - b.dims.len();
        (0..a.values.len())
            .map(|flat| {
                let (mut rest, mut at, mut stride) = (flat, 0, 1);
                for (axis, &d) in a.dims.iter().enumerate().rev() {
                    let i = rest % d;
                    rest /= d;
                    if axis >= skip {
                        let bd = b.dims[axis - skip];
                        at += if bd == 1 { 0 } else { i * stride };
                        stride *= bd;
                    }
                }
                a.values[flat] + b.values[at]
            })
            .collect()
    }
}

pub struct Affine;

impl OpSpec for Affine {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (
            shape(4),
            any_layout(),
            float(),
            seed(),
            -3.0..3.0f64,
            -1.0..1.0f64,
        )
            .prop_map(|(sh, l, dt, s, mul, add)| FuzzCase {
                op: Op::Affine { mul, add },
                inputs: vec![tensor(&sh, dt, l, s)],
            })
            .boxed()
    }

    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64> {
        let Op::Affine { mul, add } = *op else {
            unreachable!("the affine spec gets affine ops")
        };
        map(inputs, |x| x * mul + add)
    }
}

pub struct GeluTanh;

impl OpSpec for GeluTanh {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        unary(Op::GeluTanh)
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        map(inputs, |x| {
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        })
    }
}

pub struct Tanh;

impl OpSpec for Tanh {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        unary(Op::Tanh)
    }

    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        map(inputs, f64::tanh)
    }
}

pub struct Cast;

impl OpSpec for Cast {
    fn strategy(&self) -> BoxedStrategy<FuzzCase> {
        (shape(4), any_layout(), float(), float(), seed())
            .prop_map(|(sh, l, from, to, s)| FuzzCase {
                op: Op::Cast { to },
                inputs: vec![tensor(&sh, from, l, s)],
            })
            .boxed()
    }

    /// The values themselves: the rounding into the target type is the check's, which
    /// rounds every reference to the output's dtype.
    fn reference(&self, _: &Op, inputs: &[Host]) -> Vec<f64> {
        inputs[0].values.clone()
    }
}
