//! The `qlinear` op on the CPU, `x · wᵀ` over a weight of quantized blocks, with this crate's
//! product ([`super::gemm::q_xwt`]); CUDA and Metal keep Candle's quantized kernels.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use crate::ops::quant::QuantType;

use super::gemm;

pub use gemm::takes;

/// `x · wᵀ` for `x: (.., k)` on the CPU and `w: (n, k)` as its rows of `quant` blocks. The sums
/// are f32, as are the activations the product takes: other dtypes are rounded back.
pub fn qlinear(
    x: &Tensor,
    blocks: &[u8],
    quant: QuantType,
    n: usize,
) -> candle_core::Result<Tensor> {
    let wide = x.to_dtype(DType::F32)?.contiguous()?;
    let y = wide.apply_op1_no_bwd(&CpuQLinear { blocks, quant, n })?;
    y.to_dtype(x.dtype())
}

struct CpuQLinear<'a> {
    blocks: &'a [u8],
    quant: QuantType,
    n: usize,
}

impl CustomOp1 for CpuQLinear<'_> {
    fn name(&self) -> &'static str {
        "qlinear"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = xl.shape().dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("qlinear: x is a scalar");
        };
        let m: usize = lead.iter().product();
        let n = self.n;
        let per_row = k / self.quant.block_len() * self.quant.block_bytes();
        if !k.is_multiple_of(self.quant.block_len()) || self.blocks.len() != n * per_row {
            candle_core::bail!(
                "qlinear: x is (.., {k}) but the {} weight holds {} bytes for {n} rows",
                self.quant.name(),
                self.blocks.len()
            );
        }
        let (CpuStorage::F32(x), Some((start, end))) = (xs, xl.contiguous_offsets()) else {
            candle_core::bail!("qlinear: the CPU kernel takes contiguous f32 activations");
        };
        let mut out = vec![0f32; m * n];
        gemm::q_xwt(
            super::kernel_path::active(),
            &x[start..end],
            self.blocks,
            self.quant,
            &mut out,
            m,
            n,
            k,
        );
        let mut shape = lead.to_vec();
        shape.push(n);
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}
