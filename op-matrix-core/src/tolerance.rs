//! The one table of tolerances, per dtype and per op, each with its reason.
//!
//! A case passes when its NMSE is at most `nmse` and every element satisfies
//! `|a - b| <= rtol * |b| + atol * max|b|`. The absolute term scales with the output's largest
//! magnitude, so it means the same for logits near 10 and probabilities near 0.001.

use candle_core::DType;
use inference::ops::OpKind;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub nmse: f64,
    pub rtol: f64,
    pub atol: f64,
    pub reason: &'static str,
}

/// Defaults per dtype, from the dtype's step (machine epsilon): f32 2^-23, f16 2^-10, bf16 2^-7.
pub fn for_dtype(dtype: DType) -> Tolerance {
    match dtype {
        DType::F32 => Tolerance {
            nmse: 1e-9,
            rtol: 1e-4,
            atol: 1e-5,
            reason: "f32: a few ulps of reordering, as between SIMD widths or GPU reductions",
        },
        DType::F16 => Tolerance {
            nmse: 1e-5,
            rtol: 4e-3,
            atol: 2e-3,
            reason: "f16: about 2 ulps (2^-10) per element",
        },
        DType::BF16 => Tolerance {
            nmse: 1e-4,
            rtol: 3.2e-2,
            atol: 1.6e-2,
            reason: "bf16: about 2 ulps (2^-7) per element",
        },
        _ => Tolerance {
            nmse: 0.0,
            rtol: 0.0,
            atol: 0.0,
            reason: "integers are exact",
        },
    }
}

/// The tolerance for `op` with output dtype `dtype`: every op is named, so a new op must
/// say which it takes.
pub fn for_op(op: OpKind, dtype: DType) -> Tolerance {
    use OpKind::*;
    match op {
        Matmul | Linear => match dtype {
            DType::F32 => Tolerance {
                atol: 1e-4,
                reason: "f32 matmul: accumulation order over K differs between gemm kernels",
                ..for_dtype(dtype)
            },
            DType::BF16 | DType::F16 => Tolerance {
                nmse: for_dtype(dtype).nmse * 4.0,
                reason: "half matmul: GPUs accumulate in f32 and round once; CPUs may round \
                         partial sums",
                ..for_dtype(dtype)
            },
            _ => for_dtype(dtype),
        },
        GeluTanh | Tanh => match dtype {
            DType::BF16 | DType::F16 => Tolerance {
                nmse: for_dtype(dtype).nmse * 10.0,
                rtol: for_dtype(dtype).rtol * 4.0,
                reason: "half gelu/tanh: Candle's CPU tanh rounds every intermediate to the \
                         half type (1 + tanh(x) cancels for negative x), GPUs compute in f32 \
                         and round once (seen on an H200: 6 bf16 ulps on one element); this \
                         project's CPU gelu computes in f32 too, as x / (1 + e^-2u), not with \
                         the GPU's tanh",
                ..for_dtype(dtype)
            },
            _ => for_dtype(dtype),
        },
        QLinear => Tolerance {
            nmse: 1.5e-3,
            rtol: 3.2e-2,
            atol: 3e-2,
            reason: "qlinear: the kernels quantize the activations to 8 bits per block (as \
                     llama.cpp's do), each backend its own way (Candle's CPU to Q8_0 blocks, its \
                     CUDA mat-vec to Q8_1), so the product is not the exact one with the \
                     dequantized weights, nor another backend's: against the f64 product, NMSE \
                     up to 1.4e-4 (q4_0) and |error| up to 1.5e-2·max|output| over 400 random \
                     cases; CUDA against the CPU goldens, NMSE up to 6.4e-4 on an H200 for \
                     decode rows of 2 to 4 blocks, where little averages the two roundings out; \
                     the bounds are about 2x those",
        },
        // Element-wise, data movement, dequantization and the normalizations: the dtype's
        // own step.
        QEmbed | Add | Mul | BroadcastAdd | Affine | Cast | Contiguous | Cat | WriteAt
        | IndexSelect | RmsNorm | Rope | SoftmaxLastDim => for_dtype(dtype),
    }
}

/// The end-to-end goldens (logits, greedy tokens, long-text log-probs) against a fresh CPU run
/// of the same code on another machine or CPU kernel path: the dtype's own step, as for one op.
pub fn for_retrace(dtype: DType) -> Tolerance {
    let step = for_dtype(dtype);
    match dtype {
        DType::BF16 => Tolerance {
            reason: "bf16 end to end on another CPU kernel path: each path sums a product's f32 \
                     terms in its own order and every layer rounds the result to bf16, so the \
                     difference grows over the 896-token text (measured against goldens \
                     blessed on AVX-512: long-text log-probs NMSE 1.2e-6 on AVX2 and 7.2e-6 on \
                     the portable path, the same 7.2e-6 a Zen 3 gave; logits and greedy tokens \
                     equal)",
            ..step
        },
        DType::F32 => Tolerance {
            reason: "f32 end to end on another CPU kernel path: summation order only \
                     (measured: NMSE up to 1.6e-13 on AVX2 and 7.5e-12 on the portable path)",
            ..step
        },
        DType::F16 => Tolerance {
            atol: 8e-3,
            reason: "f16 end to end on another CPU kernel path: products are widened and \
                     summed in f32 in each path's order, and every layer rounds the result to \
                     f16 (measured against goldens blessed on AVX-512: logits NMSE up to \
                     4.5e-6 and 4.1e-3·max|logit| on the portable path, 3.2e-4·max on AVX2; \
                     long-text log-probs NMSE up to 6.9e-7)",
            ..step
        },
        _ => step,
    }
}

/// End-to-end logits pass through every layer, so their errors compound: looser by dtype.
pub fn for_logits(dtype: DType) -> Tolerance {
    match dtype {
        DType::F32 => Tolerance {
            nmse: 1e-8,
            rtol: 1e-3,
            atol: 1e-4,
            reason: "f32 logits after every layer: per-op reordering compounds",
        },
        DType::F16 => Tolerance {
            nmse: 1e-4,
            rtol: 5e-2,
            atol: 2e-2,
            reason: "f16 logits after every layer",
        },
        _ => Tolerance {
            nmse: 1e-2,
            rtol: 2e-1,
            atol: 1.5e-1,
            reason: "bf16 logits after every layer: the CPU's own bf16 logits are NMSE 3e-3 to \
                     6e-3 and up to 0.09·max|logit| from its f32 logits (tiny models), and an \
                     H200's were NMSE 2e-3 to 4e-3 and 0.08·max from the CPU's while closer to \
                     f32 in perplexity, so two correct bf16 paths differ this much",
        },
    }
}
