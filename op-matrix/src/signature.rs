//! Signatures: what makes two op calls the same case for a backend. Candle's kernels differ
//! by (op, params, dtype, layout), so a signature keys on all of them.

use std::fmt;

use candle_core::Tensor;
use inference::ops::trace::Call;
use inference::ops::Op;
use serde::{Deserialize, Serialize};

use op_matrix_core::layout::Strided;

/// The layout of one op input: its dtype and its view (shape, strides, offset in elements).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputLayout {
    pub dtype: String,
    #[serde(flatten)]
    pub strided: Strided,
}

impl InputLayout {
    pub fn of(t: &Tensor) -> Self {
        Self {
            dtype: t.dtype().as_str().to_string(),
            strided: Strided::of(t),
        }
    }
}

/// One distinct case of an op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub op: Op,
    pub inputs: Vec<InputLayout>,
}

impl Signature {
    pub fn of(call: &Call) -> Self {
        Self {
            op: call.op.clone(),
            inputs: call.inputs.iter().map(InputLayout::of).collect(),
        }
    }

    /// A stable, human-readable key, unique per signature.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        for (i, x) in self.inputs.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let v = &x.strided;
            write!(f, "{sep}{}{:?}", x.dtype, v.shape)?;
            // Strides of size-1 dims address nothing, so they do not make a new case.
            if !v.is_contiguous() || v.offset != 0 {
                write!(f, "@{:?}+{}", v.stride, v.offset)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use inference::ops::{self, trace};

    /// Distinct signatures of `calls`, in order of first appearance.
    pub fn distinct<'a>(calls: impl IntoIterator<Item = &'a Call>) -> Vec<(Signature, &'a Call)> {
        let mut seen = std::collections::HashSet::new();
        calls
            .into_iter()
            .filter_map(|c| {
                let s = Signature::of(c);
                seen.insert(s.key()).then_some((s, c))
            })
            .collect()
    }

    #[test]
    fn transposed_inputs_get_their_own_signature() {
        let (_, t) = trace::capture(|| {
            let a = ops::source(Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap());
            let b = ops::source(Tensor::ones((3, 2), DType::F32, &Device::Cpu).unwrap());
            ops::matmul(&a, &b).unwrap();
            ops::matmul(&a, &a.t().unwrap()).unwrap();
            ops::matmul(&a, &b).unwrap();
        });
        let sigs: Vec<String> = distinct(&t.calls).iter().map(|(s, _)| s.key()).collect();
        assert_eq!(
            sigs,
            [
                "matmul f32[2, 3], f32[3, 2]",
                "matmul f32[2, 3], f32[3, 2]@[1, 3]+0"
            ]
        );
    }
}
