//! The op vocabulary: every kernel-launching tensor operation of the model goes through here.
//!
//! Candle keeps a tensor's producing op private, so nothing outside Candle can walk its graph.
//! Routing each kernel launch through [`Op::call`] makes the model's op set visible: while a
//! [`trace`] is active each call is recorded with its real inputs, and the op-matrix replays
//! the very same [`Op::apply`] on every backend. View operations (reshape, transpose, narrow,
//! broadcast) launch no kernel and are not ops. `inference/clippy.toml` forbids the rest of
//! the crate from calling Candle's kernel methods directly.
#![allow(clippy::disallowed_methods)]

pub mod cpu;
pub mod dtype_name;
pub mod fallback;
pub mod quant;
pub mod trace;

use std::fmt;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use quant::QuantType;

/// One kernel-launching operation and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `a @ b`, batched over leading dims. Its own kernels on the CPU for bf16, f32 sums for
    /// f16.
    Matmul,
    /// `x · wᵀ` for `x: (m, k)` and a weight `w: (n, k)`: every projection of the model. Its
    /// own kernel on the CPU, Candle's matmul on other backends.
    Linear,
    /// Element-wise `a + b` of equal shapes.
    Add,
    /// Element-wise `a * b` of equal shapes.
    Mul,
    /// `a + b` with `b` broadcast to `a`'s shape.
    BroadcastAdd,
    /// `x * mul + add`.
    Affine {
        mul: f64,
        add: f64,
    },
    /// GELU, tanh approximation (`gelu_pytorch_tanh`). Its own kernel on the CPU.
    GeluTanh,
    Tanh,
    /// Dtype conversion.
    Cast {
        #[serde(with = "dtype_name")]
        to: DType,
    },
    /// Copy a strided view into a fresh contiguous buffer.
    Contiguous,
    /// Concatenate all inputs along `dim`.
    Cat {
        dim: usize,
    },
    /// Copy the second input into the first, a contiguous buffer, at `offset` along `dim`, in
    /// place; the result is the first input. The KV cache appends this way.
    WriteAt {
        dim: usize,
        offset: usize,
    },
    /// Gather rows of the first input at the u32 indices of the second.
    IndexSelect {
        dim: usize,
    },
    /// candle-nn custom op `rms-norm`: `x / sqrt(mean(x^2) + eps) * alpha` over the last dim.
    RmsNorm {
        eps: f32,
    },
    /// candle-nn custom op `rotary-emb`: rotate-half RoPE of `(b, h, t, d)` by `(t, d/2)` tables.
    Rope,
    /// candle-nn custom op `softmax-last-dim`, computed in f32 whatever the dtype. Its own
    /// kernel on the CPU.
    SoftmaxLastDim,
    /// `x · wᵀ` over a quantized weight given as its blocks (see [`quant`]): the projections
    /// of a quantized GGUF checkpoint.
    QLinear {
        quant: QuantType,
    },
    /// The rows of a quantized matrix (its blocks) at the u32 indices of the second input,
    /// dequantized to f32: the embedding lookup of a quantized GGUF checkpoint.
    QEmbed {
        quant: QuantType,
    },
}

/// An op without its parameters: what tolerances, fuzz strategies and expected-failure lists
/// are keyed by. Matches on it are exhaustive, so an op added here and left out of any of them
/// does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Matmul,
    Linear,
    Add,
    Mul,
    BroadcastAdd,
    Affine,
    GeluTanh,
    Tanh,
    Cast,
    Contiguous,
    Cat,
    WriteAt,
    IndexSelect,
    RmsNorm,
    Rope,
    SoftmaxLastDim,
    QLinear,
    QEmbed,
}

impl OpKind {
    /// Every op, in the order the harness runs them.
    pub const ALL: [OpKind; 18] = [
        Self::Matmul,
        Self::Linear,
        Self::Add,
        Self::Mul,
        Self::BroadcastAdd,
        Self::Affine,
        Self::GeluTanh,
        Self::Tanh,
        Self::Cast,
        Self::Contiguous,
        Self::Cat,
        Self::WriteAt,
        Self::IndexSelect,
        Self::RmsNorm,
        Self::Rope,
        Self::SoftmaxLastDim,
        Self::QLinear,
        Self::QEmbed,
    ];

    /// The op's name as a stable identifier (reports, expected-failure lists, `--op`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Matmul => "matmul",
            Self::Linear => "linear",
            Self::Add => "add",
            Self::Mul => "mul",
            Self::BroadcastAdd => "broadcast_add",
            Self::Affine => "affine",
            Self::GeluTanh => "gelu_tanh",
            Self::Tanh => "tanh",
            Self::Cast => "cast",
            Self::Contiguous => "contiguous",
            Self::Cat => "cat",
            Self::WriteAt => "write_at",
            Self::IndexSelect => "index_select",
            Self::RmsNorm => "rms_norm",
            Self::Rope => "rope",
            Self::SoftmaxLastDim => "softmax_last_dim",
            Self::QLinear => "qlinear",
            Self::QEmbed => "qembed",
        }
    }
}

gemma3_interface::named!(OpKind, "op");

impl OpKind {
    /// Ops over a GGUF file's quantized blocks, whose cases differ by block format.
    pub fn is_quantized(self) -> bool {
        matches!(self, Self::QLinear | Self::QEmbed)
    }
}

impl Op {
    /// The block format of a quantized op's weight.
    pub fn quant(&self) -> Option<QuantType> {
        match self {
            Op::QLinear { quant } | Op::QEmbed { quant } => Some(*quant),
            _ => None,
        }
    }

    /// How many tensor inputs the op takes; `None` for variadic ops.
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Affine { .. } | Op::GeluTanh | Op::Tanh | Op::Cast { .. } => Some(1),
            Op::Contiguous | Op::SoftmaxLastDim => Some(1),
            Op::Matmul | Op::Linear | Op::Add | Op::Mul | Op::BroadcastAdd => Some(2),
            Op::QLinear { .. } | Op::QEmbed { .. } => Some(2),
            Op::WriteAt { .. } => Some(2),
            Op::IndexSelect { .. } | Op::RmsNorm { .. } => Some(2),
            Op::Rope => Some(3),
            Op::Cat { .. } => None,
        }
    }

    /// The op without its parameters.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Matmul => OpKind::Matmul,
            Op::Linear => OpKind::Linear,
            Op::Add => OpKind::Add,
            Op::Mul => OpKind::Mul,
            Op::BroadcastAdd => OpKind::BroadcastAdd,
            Op::Affine { .. } => OpKind::Affine,
            Op::GeluTanh => OpKind::GeluTanh,
            Op::Tanh => OpKind::Tanh,
            Op::Cast { .. } => OpKind::Cast,
            Op::Contiguous => OpKind::Contiguous,
            Op::Cat { .. } => OpKind::Cat,
            Op::WriteAt { .. } => OpKind::WriteAt,
            Op::IndexSelect { .. } => OpKind::IndexSelect,
            Op::RmsNorm { .. } => OpKind::RmsNorm,
            Op::Rope => OpKind::Rope,
            Op::SoftmaxLastDim => OpKind::SoftmaxLastDim,
            Op::QLinear { .. } => OpKind::QLinear,
            Op::QEmbed { .. } => OpKind::QEmbed,
        }
    }

    /// The op's name as a stable identifier (reports, expected-failure lists).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Runs the op. This is the only place in the crate that launches Candle kernels.
    pub fn apply(&self, xs: &[&Tensor]) -> Result<Tensor> {
        if let Some(n) = self.arity() {
            if xs.len() != n {
                return Err(Error::Invalid(format!(
                    "op {self} takes {n} inputs, got {}",
                    xs.len()
                )));
            }
        } else if xs.is_empty() {
            return Err(Error::Invalid(format!(
                "op {self} takes at least one input"
            )));
        }
        let out = match self {
            Op::Matmul => cpu::matmul::matmul(xs[0], xs[1]),
            Op::Linear => cpu::linear::linear(xs[0], xs[1]),
            Op::Add => xs[0].add(xs[1]),
            Op::Mul => xs[0].mul(xs[1]),
            Op::BroadcastAdd => xs[0].broadcast_add(xs[1]),
            Op::Affine { mul, add } => xs[0].affine(*mul, *add),
            Op::GeluTanh => cpu::gelu::gelu_tanh(xs[0]),
            Op::Tanh => xs[0].tanh(),
            Op::Cast { to } => xs[0].to_dtype(*to),
            Op::Contiguous => xs[0].force_contiguous(),
            Op::Cat { dim } => Tensor::cat(xs, *dim),
            Op::WriteAt { dim, offset } => xs[0]
                .slice_set(xs[1], *dim, *offset)
                .map(|()| xs[0].clone()),
            Op::IndexSelect { dim } => xs[0].index_select(xs[1], *dim),
            Op::RmsNorm { eps } => candle_nn::ops::rms_norm(xs[0], xs[1], *eps),
            Op::Rope => candle_nn::rotary_emb::rope(xs[0], xs[1], xs[2]),
            Op::SoftmaxLastDim => cpu::softmax::softmax_last_dim(xs[0]),
            Op::QLinear { quant } => return quant::linear(xs[0], xs[1], *quant),
            Op::QEmbed { quant } => return quant::embed(xs[0], xs[1], *quant),
        }?;
        Ok(out)
    }

    /// Runs the op where it belongs (see [`fallback`]) and records it when a trace is active.
    /// Calls that would launch no kernel (a cast to the same dtype, `contiguous` of a
    /// contiguous tensor) return the input as is.
    pub fn call(&self, xs: &[&Tensor]) -> Result<Tensor> {
        if self.is_noop(xs) {
            return Ok(xs[0].clone());
        }
        if self.writes_in_place() && trace::is_active() {
            // The buffer changes under the trace's references: record copies of it as it was
            // before and after.
            let before = xs[0].force_contiguous()?;
            let out = fallback::dispatch(self, xs)?;
            let mut inputs = xs.to_vec();
            inputs[0] = &before;
            trace::record_in_place(self, &inputs, &out, &out.force_contiguous()?);
            return Ok(out);
        }
        let out = fallback::dispatch(self, xs)?;
        trace::record(self, xs, &out);
        Ok(out)
    }

    /// Whether the op writes into its first input instead of a new buffer.
    pub fn writes_in_place(&self) -> bool {
        matches!(self, Op::WriteAt { .. })
    }

    fn is_noop(&self, xs: &[&Tensor]) -> bool {
        match self {
            Op::Cast { to } => xs.len() == 1 && xs[0].dtype() == *to,
            Op::Contiguous => xs.len() == 1 && xs[0].is_contiguous(),
            Op::Cat { .. } => xs.len() == 1,
            _ => false,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Affine { mul, add } => write!(f, "affine(mul={mul},add={add})"),
            Op::Cast { to } => write!(f, "cast(to={})", to.as_str()),
            Op::Cat { dim } => write!(f, "cat(dim={dim})"),
            Op::WriteAt { dim, offset } => write!(f, "write_at(dim={dim},offset={offset})"),
            Op::IndexSelect { dim } => write!(f, "index_select(dim={dim})"),
            Op::RmsNorm { eps } => write!(f, "rms_norm(eps={eps})"),
            Op::QLinear { quant } => write!(f, "qlinear({quant})"),
            Op::QEmbed { quant } => write!(f, "qembed({quant})"),
            op => f.write_str(op.name()),
        }
    }
}

/// The float dtypes the model runs in, and so the dtypes of every golden and check.
pub const DTYPES: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

/// Whether this thread holds op state that other threads do not see: a trace capture, a
/// fallback plan or a refused op. Work that carries it must stay on this thread.
pub fn bound_to_this_thread() -> bool {
    trace::is_active() || fallback::is_active()
}

/// Marks a tensor that enters the graph from the host (weights, token ids, tables, masks), so
/// that a trace can tell it from the output of a kernel launched outside the vocabulary.
pub fn source(t: Tensor) -> Tensor {
    trace::record_source(&t);
    t
}

pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Op::Matmul.call(&[a, b])
}

pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Op::Linear.call(&[x, w])
}

/// `x · wᵀ` over a quantized weight. The model's calls multiply by the weight as its device
/// holds it; a trace, a fallback or a refusal takes the op's general path, which records the
/// weight as its blocks and rebuilds it from them.
pub fn qlinear(x: &Tensor, w: &quant::QWeight) -> Result<Tensor> {
    let op = Op::QLinear { quant: w.quant() };
    if trace::is_active() || fallback::diverts(&op) {
        return op.call(&[x, &source(w.blocks()?)]);
    }
    w.forward(x)
}

/// The rows of the quantized matrix `w` at `ids`, in f32; the same paths as [`qlinear`].
pub fn qembed(w: &quant::QWeight, ids: &Tensor) -> Result<Tensor> {
    let op = Op::QEmbed { quant: w.quant() };
    if trace::is_active() || fallback::diverts(&op) {
        return op.call(&[&source(w.blocks()?), ids]);
    }
    w.rows(ids)
}

pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Op::Add.call(&[a, b])
}

pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Op::Mul.call(&[a, b])
}

pub fn broadcast_add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Op::BroadcastAdd.call(&[a, b])
}

pub fn affine(x: &Tensor, mul: f64, add: f64) -> Result<Tensor> {
    Op::Affine { mul, add }.call(&[x])
}

pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    Op::GeluTanh.call(&[x])
}

pub fn tanh(x: &Tensor) -> Result<Tensor> {
    Op::Tanh.call(&[x])
}

pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    Op::Cast { to }.call(&[x])
}

pub fn contiguous(x: &Tensor) -> Result<Tensor> {
    Op::Contiguous.call(&[x])
}

pub fn cat(xs: &[&Tensor], dim: usize) -> Result<Tensor> {
    Op::Cat { dim }.call(xs)
}

/// Writes `src` into `dst` at `offset` along `dim` and returns the written buffer: `dst` itself,
/// or a new one where the op ran elsewhere (see [`fallback`]), so always use the result.
pub fn write_at(dst: &Tensor, src: &Tensor, dim: usize, offset: usize) -> Result<Tensor> {
    Op::WriteAt { dim, offset }.call(&[dst, src])
}

pub fn index_select(x: &Tensor, ids: &Tensor, dim: usize) -> Result<Tensor> {
    Op::IndexSelect { dim }.call(&[x, ids])
}

pub fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f32) -> Result<Tensor> {
    Op::RmsNorm { eps }.call(&[x, alpha])
}

pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    Op::Rope.call(&[x, cos, sin])
}

pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Op::SoftmaxLastDim.call(&[x])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_and_backends_round_trip_by_name() {
        use gemma3_interface::named::assert_names_round_trip;
        assert_names_round_trip::<OpKind>();
        assert_names_round_trip::<crate::device::Backend>();
        let e = "silu".parse::<OpKind>().unwrap_err().to_string();
        assert!(
            e.starts_with("unknown op `silu`; use one of matmul, linear,"),
            "{e}"
        );
    }

    #[test]
    fn an_op_is_named_by_its_kind_as_its_serde_tag_is() {
        let op = Op::RmsNorm { eps: 1e-6 };
        let json = serde_json::to_value(&op).unwrap();
        assert_eq!(json["op"], op.kind().name());
        assert_eq!(Op::Cast { to: DType::F16 }.name(), "cast");
    }
}
