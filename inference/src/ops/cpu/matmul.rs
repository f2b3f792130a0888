//! The `matmul` op. On the CPU, bf16 products whose right side is a row-major matrix or the
//! transpose of one go to the kernels of [`super::gemm`]: Candle 0.11 widens both sides to f32
//! on every call, which for attention means the whole K and V caches at every decode step.
//! f16 products on the CPU are widened to f32 for Candle's matmul: its f16 GEMM sums in f16
//! on CPUs with f16 arithmetic (Apple Silicon and other recent Arm cores), which the end-to-end
//! goldens showed as a wrong number. Everything else, and every other backend, is Candle's
//! matmul.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::gemm;

/// Rows of the left side up to which a row-major right side takes [`gemm::bf16_xw`]; past
/// them Candle's tuned f32 GEMM is the better of the two.
const XW_MAX_ROWS: usize = 4;

pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let cpu_bf16 = a.device().is_cpu() && a.dtype() == DType::BF16 && b.dtype() == DType::BF16;
    let rank = a.rank();
    if cpu_bf16 && rank >= 2 && b.rank() == rank && a.dims()[..rank - 2] == b.dims()[..rank - 2] {
        let bt = b.t()?;
        if bt.is_contiguous() {
            return a
                .contiguous()?
                .apply_op2_no_bwd(&bt, &CpuMatmul { transposed: true });
        }
        if a.dim(rank - 2)? <= XW_MAX_ROWS {
            let b = b.contiguous()?;
            return a
                .contiguous()?
                .apply_op2_no_bwd(&b, &CpuMatmul { transposed: false });
        }
    }
    if a.device().is_cpu() && a.dtype() == DType::F16 && b.dtype() == DType::F16 {
        let wide = |t: &Tensor| t.to_dtype(DType::F32);
        return wide(a)?.matmul(&wide(b)?)?.to_dtype(DType::F16);
    }
    a.matmul(b)
}

/// `a · b` for contiguous bf16 operands with equal batch dims; `transposed`: the second
/// operand is `bᵀ`, `(.., n, k)`.
struct CpuMatmul {
    transposed: bool,
}

impl CustomOp2 for CpuMatmul {
    fn name(&self) -> &'static str {
        "matmul-bf16"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::BF16(a), CpuStorage::BF16(b)) = (a, b) else {
            candle_core::bail!("matmul-bf16: takes bf16 operands");
        };
        let (Some((a0, a1)), Some((b0, b1))) = (al.contiguous_offsets(), bl.contiguous_offsets())
        else {
            candle_core::bail!("matmul-bf16: takes contiguous operands");
        };
        let dims = al.dims();
        let rank = dims.len();
        let (m, k) = (dims[rank - 2], dims[rank - 1]);
        let (r, c) = (bl.dims()[rank - 2], bl.dims()[rank - 1]);
        let (n, kb) = if self.transposed { (r, c) } else { (c, r) };
        if k != kb {
            candle_core::bail!("matmul-bf16: a is (.., {m}, {k}) but b has {kb} rows");
        }
        let batch: usize = dims[..rank - 2].iter().product();
        let (a, b) = (&a[a0..a1], &b[b0..b1]);
        let mut out = vec![half::bf16::ZERO; batch * m * n];
        for (i, o) in out.chunks_exact_mut((m * n).max(1)).enumerate().take(batch) {
            let ai = &a[i * m * k..(i + 1) * m * k];
            let bi = &b[i * n * k..(i + 1) * n * k];
            if self.transposed {
                gemm::bf16_xwt(ai, bi, o, m, n, k);
            } else {
                gemm::bf16_xw(ai, bi, o, m, n, k);
            }
        }
        let mut shape = dims[..rank - 2].to_vec();
        shape.extend([m, n]);
        Ok((CpuStorage::BF16(out), Shape::from(shape)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n as u64)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                h as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::BF16))
            .unwrap()
    }

    /// Candle's product in f32 of the same bf16 values, rounded once.
    fn reference(a: &Tensor, b: &Tensor) -> Tensor {
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        f(a).matmul(&f(b)).unwrap().to_dtype(DType::BF16).unwrap()
    }

    fn assert_close(got: &Tensor, want: &Tensor) {
        assert_eq!(got.dims(), want.dims());
        let f = |t: &Tensor| -> Vec<f32> {
            t.to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        for (g, w) in f(got).iter().zip(f(want)) {
            // Both sum exact products in f32; the orders differ, then each rounds to bf16.
            assert!((g - w).abs() <= w.abs() / 64.0 + 1e-3, "{g} vs {w}");
        }
    }

    #[test]
    fn a_transposed_right_side_takes_the_linear_kernel_and_agrees_with_candle() {
        // Attention's scores: queries times the transposed keys, batched over kv heads.
        for (m, n, k) in [(4, 37, 256), (1, 600, 64), (21, 129, 33)] {
            let a = random(&[2, 3, m, k], 1);
            let keys = random(&[2, 3, n, k], 2);
            assert_close(
                &matmul(&a, &keys.t().unwrap()).unwrap(),
                &reference(&a, &keys.t().unwrap()),
            );
        }
    }

    #[test]
    fn a_row_major_right_side_takes_the_xw_kernel_for_a_few_rows() {
        // Attention's output: probabilities times the values, every width around the blocks.
        for (m, n, k) in [(4, 256, 129), (1, 64, 1), (3, 70, 515), (2, 15, 8)] {
            let a = random(&[2, m, k], 3);
            let values = random(&[2, k, n], 4);
            assert_close(&matmul(&a, &values).unwrap(), &reference(&a, &values));
        }
    }

    #[test]
    fn f16_products_sum_in_f32() {
        // Summed in f16, 4096 ones stop at 2048, where the spacing of f16 becomes 2.
        let ones = |shape: &[usize]| Tensor::ones(shape, DType::F16, &Device::Cpu).unwrap();
        let sums = matmul(&ones(&[2, 3, 4096]), &ones(&[2, 4096, 5])).unwrap();
        let sums: Vec<f32> = sums
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .unwrap();
        assert!(sums.iter().all(|&v| v == 4096.0), "{sums:?}");
    }

    #[test]
    fn views_and_other_shapes_still_multiply() {
        let a = random(&[5, 40], 5);
        let b = random(&[40, 9], 6);
        // Many rows: Candle; a narrowed, non-contiguous right side: copied first.
        assert_close(&matmul(&a, &b).unwrap(), &reference(&a, &b));
        let wide = random(&[40, 20], 7);
        let view = wide.i((.., 3..12)).unwrap();
        assert_close(
            &matmul(&a.i(0..2).unwrap(), &view).unwrap(),
            &reference(&a.i(0..2).unwrap(), &view),
        );
        let batched = random(&[2, 3, 40], 8);
        assert!(matmul(&batched, &random(&[3, 40, 4], 9)).is_err());
    }
}
