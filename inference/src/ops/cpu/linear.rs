//! The `linear` op, `x · wᵀ`: its own CPU kernel ([`super::gemm`]), Candle's matmul elsewhere.
//!
//! Only the CPU runs the custom op; CUDA and Metal tensors never reach it, so it needs no
//! `cuda_fwd` or `metal_fwd`, and there is no feature that could leave one out.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::gemm;

pub fn linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let ours = matches!(x.dtype(), DType::BF16 | DType::F16 | DType::F32);
    if x.device().is_cpu() && ours && x.dtype() == w.dtype() {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        return x.apply_op2_no_bwd(&w, &CpuLinear);
    }
    x.matmul(&w.t()?)
}

struct CpuLinear;

impl CustomOp2 for CpuLinear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = xl.shape().dims2()?;
        let (n, kw) = wl.shape().dims2()?;
        if k != kw {
            candle_core::bail!("linear: x is (.., {k}) but w is (.., {kw})");
        }
        let (Some((xa, xb)), Some((wa, wb))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("linear: the CPU kernel takes contiguous operands");
        };
        let out = match (xs, ws) {
            (CpuStorage::BF16(x), CpuStorage::BF16(w)) => {
                let mut out = vec![half::bf16::ZERO; m * n];
                gemm::bf16_xwt(&x[xa..xb], &w[wa..wb], &mut out, m, n, k);
                CpuStorage::BF16(out)
            }
            (CpuStorage::F16(x), CpuStorage::F16(w)) => {
                let mut out = vec![half::f16::ZERO; m * n];
                gemm::f16_xwt(&x[xa..xb], &w[wa..wb], &mut out, m, n, k);
                CpuStorage::F16(out)
            }
            (CpuStorage::F32(x), CpuStorage::F32(w)) => {
                let mut out = vec![0f32; m * n];
                gemm::f32_xwt(&x[xa..xb], &w[wa..wb], &mut out, m, n, k);
                CpuStorage::F32(out)
            }
            _ => candle_core::bail!(
                "linear: no CPU kernel for {:?} x {:?}",
                xs.dtype(),
                ws.dtype()
            ),
        };
        Ok((out, Shape::from((m, n))))
    }
}
