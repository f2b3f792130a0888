//! The `qlinear` op on the CPU, `x · wᵀ` over a weight of quantized blocks, with this crate's
//! product ([`super::gemm::q_xwt`]); CUDA and Metal keep Candle's quantized kernels.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use crate::ops::quant::QuantType;

use super::gemm;

pub use gemm::{dequantize_rows, takes};

/// Whether every product of `quant`, decode steps included, is this crate's.
pub fn owns(quant: QuantType) -> bool {
    takes(quant, 1)
}

/// `x · wᵀ` for `x: (.., k)` on the CPU and `w: (n, k)` as its rows of `quant` blocks, in
/// `parts` of whole rows. The sums are f32, as are the activations the product takes: other
/// dtypes are rounded back.
pub fn qlinear(
    x: &Tensor,
    parts: &[&[u8]],
    quant: QuantType,
    n: usize,
) -> candle_core::Result<Tensor> {
    let wide = x.to_dtype(DType::F32)?.contiguous()?;
    let y = wide.apply_op1_no_bwd(&CpuQLinear { parts, quant, n })?;
    y.to_dtype(x.dtype())
}

struct CpuQLinear<'a> {
    parts: &'a [&'a [u8]],
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
        let bytes: usize = self.parts.iter().map(|p| p.len()).sum();
        if !k.is_multiple_of(self.quant.block_len()) || bytes != n * per_row {
            candle_core::bail!(
                "qlinear: x is (.., {k}) but the {} weight holds {bytes} bytes for {n} rows",
                self.quant.name(),
            );
        }
        let (CpuStorage::F32(x), Some((start, end))) = (xs, xl.contiguous_offsets()) else {
            candle_core::bail!("qlinear: the CPU kernel takes contiguous f32 activations");
        };
        let (x, path) = (&x[start..end], super::kernel_path::active());
        let mut out = vec![0f32; m * n];
        if let [blocks] = self.parts {
            gemm::q_xwt(path, x, blocks, self.quant, &mut out, m, n, k);
        } else {
            // Each part's columns of the output, computed apart and laid in place.
            let mut first = 0;
            for blocks in self.parts {
                let cols = blocks.len() / per_row.max(1);
                let mut part = vec![0f32; m * cols];
                gemm::q_xwt(path, x, blocks, self.quant, &mut part, m, cols, k);
                for (dst, src) in out.chunks_exact_mut(n).zip(part.chunks_exact(cols.max(1))) {
                    dst[first..first + cols].copy_from_slice(src);
                }
                first += cols;
            }
        }
        let mut shape = lead.to_vec();
        shape.push(n);
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}
