//! Each op's test spec in one place: how to fuzz it and what it computes, in f64. An op of
//! the vocabulary without a spec, or a spec without either part, does not compile; the third
//! part, its tolerance, is in `op_matrix_core::tolerance`'s table (exhaustive on the op too),
//! because the CLI's preflight judges with it.

mod elementwise;
mod matmul;
mod movement;
mod norm;
mod quant;
mod rope;

use candle_core::Tensor;
use inference::ops::{Op, OpKind};
use op_matrix_core::replay::to_f64;
use proptest::strategy::BoxedStrategy;

use crate::fuzz::FuzzCase;
use crate::Result;

/// What the fuzzer and the f64 check need of an op.
pub trait OpSpec: Sync {
    /// Random cases of the op: odd sizes, strided and broadcast inputs where the op takes them.
    fn strategy(&self) -> BoxedStrategy<FuzzCase>;

    /// The op computed in f64 on the host from `inputs` (their values as given, already
    /// rounded to their dtype): an implementation independent of every backend's kernels.
    fn reference(&self, op: &Op, inputs: &[Host]) -> Vec<f64>;
}

/// An input on the host: its values in logical (row-major) order and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub values: Vec<f64>,
    pub dims: Vec<usize>,
}

impl Host {
    pub fn of(t: &Tensor) -> Result<Self> {
        Ok(Self {
            values: to_f64(t)?,
            dims: t.dims().to_vec(),
        })
    }

    /// The size of the last dim (1 for a scalar).
    pub fn last(&self) -> usize {
        self.dims.last().copied().unwrap_or(1)
    }
}

/// The spec of `op`.
pub fn of(op: OpKind) -> &'static dyn OpSpec {
    use OpKind::*;
    match op {
        Matmul => &matmul::Matmul,
        Linear => &matmul::Linear,
        Add => &elementwise::Add,
        Mul => &elementwise::Mul,
        BroadcastAdd => &elementwise::BroadcastAdd,
        Affine => &elementwise::Affine,
        GeluTanh => &elementwise::GeluTanh,
        Tanh => &elementwise::Tanh,
        Cast => &elementwise::Cast,
        Contiguous => &movement::Contiguous,
        Cat => &movement::Cat,
        WriteAt => &movement::WriteAt,
        IndexSelect => &movement::IndexSelect,
        RmsNorm => &norm::RmsNorm,
        SoftmaxLastDim => &norm::SoftmaxLastDim,
        Rope => &rope::Rope,
        QLinear => &quant::QLinear,
        QEmbed => &quant::QEmbed,
    }
}

/// `x · wᵀ` in f64 for rows of `k` values: the product of `linear` and `qlinear`.
fn xwt(x: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    x.chunks(k)
        .flat_map(|row| {
            w.chunks(k)
                .map(|col| row.iter().zip(col).map(|(a, b)| a * b).sum::<f64>())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The f64 reference of a fuzz case.
pub fn reference(case: &FuzzCase) -> Result<Vec<f64>> {
    let inputs = case
        .inputs
        .iter()
        .map(Host::of)
        .collect::<Result<Vec<_>>>()?;
    Ok(of(case.op.kind()).reference(&case.op, &inputs))
}
