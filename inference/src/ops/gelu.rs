//! The `gelu_tanh` op on the CPU: Candle 0.11 evaluates it on one core, rounding every
//! intermediate to the half type; this runs on every core in f32 and rounds once, as GPUs do.
//! Other backends use Candle's kernel.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

pub fn gelu_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::BF16 | DType::F32) {
        return x.contiguous()?.apply_op1_no_bwd(&CpuGelu);
    }
    x.gelu()
}

/// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, in f32.
fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

fn map<T: Copy + Send + Sync>(src: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = src.to_vec();
    out.par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = f(*v)));
    out
}

struct CpuGelu;

impl CustomOp1 for CpuGelu {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("gelu-tanh: the CPU kernel takes a contiguous input");
        };
        let out = match s {
            CpuStorage::BF16(x) => {
                CpuStorage::BF16(map(&x[a..b], |v| bf16::from_f32(gelu(v.to_f32()))))
            }
            CpuStorage::F32(x) => CpuStorage::F32(map(&x[a..b], gelu)),
            other => candle_core::bail!("gelu-tanh: no CPU kernel for {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
}
