//! The ops that have kernels of this project's own on the CPU (and hand every other device to
//! Candle), and the instruction-set path those kernels take ([`kernel_path`]).

pub(super) mod elementwise;
pub(super) mod gelu;
mod gemm;
pub mod kernel_path;
pub(super) mod linear;
pub(super) mod matmul;
pub(super) mod qlinear;
pub(super) mod softmax;
