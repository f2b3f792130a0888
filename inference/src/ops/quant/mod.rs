//! Quantized weights: the block formats of GGUF files, and `qlinear`, the projection over
//! them. The op takes the weight as the file stores it, a `u8` tensor of whole blocks (one row
//! of `k / block` blocks per output), so a trace records, and the op-matrix replays, exactly
//! what the file holds.

mod shared_bytes;
mod weight;

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use shared_bytes::{Owner, SharedBytes};
pub use weight::QWeight;

/// A block format of quantized weights, as llama.cpp names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum QuantType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl QuantType {
    pub const ALL: [QuantType; 10] = [
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q2K,
        Self::Q3K,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
            Self::Q2K => "q2_k",
            Self::Q3K => "q3_k",
            Self::Q4K => "q4_k",
            Self::Q5K => "q5_k",
            Self::Q6K => "q6_k",
        }
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q5_0 => GgmlDType::Q5_0,
            Self::Q5_1 => GgmlDType::Q5_1,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q2K => GgmlDType::Q2K,
            Self::Q3K => GgmlDType::Q3K,
            Self::Q4K => GgmlDType::Q4K,
            Self::Q5K => GgmlDType::Q5K,
            Self::Q6K => GgmlDType::Q6K,
        }
    }

    /// Weights per block: a row's length must be a multiple of it.
    pub fn block_len(self) -> usize {
        self.ggml().block_size()
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.ggml().type_size()
    }

    /// The format of a GGUF tensor type; none for the unquantized ones (f32, f16, bf16) and
    /// for the 8-bit formats that exist only for activations (q8_1, q8_k).
    pub fn of_ggml(dtype: GgmlDType) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.ggml() == dtype)
    }
}

gemma3_interface::named!(QuantType, "quantization type");

impl TryFrom<String> for QuantType {
    type Error = gemma3_interface::named::UnknownName;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<QuantType> for String {
    fn from(q: QuantType) -> String {
        q.name().to_string()
    }
}

/// `x · wᵀ` for `x: (m, k)` and the weight `w: (n, k)` given as its blocks (`u8`, `(n, k /
/// block_len · block_bytes)`), on `x`'s device.
pub(super) fn linear(x: &Tensor, blocks: &Tensor, quant: QuantType) -> Result<Tensor> {
    QWeight::new(blocks, quant, x.device())?.forward(x)
}

/// The rows of the matrix that `blocks` hold at `ids`, dequantized to f32, on `ids`' device.
pub(super) fn embed(blocks: &Tensor, ids: &Tensor, quant: QuantType) -> Result<Tensor> {
    QWeight::new(blocks, quant, ids.device())?.rows(ids)
}

/// The tensor of type `dtype` and shape `dims` whose data are `bytes` (as a GGUF file holds
/// them), on `device`. The backends read the blocks in place as structs of f16 and integers,
/// which need an aligned buffer: `bytes` is used where it is one, copied where it is not.
pub(crate) fn qtensor(
    bytes: &[u8],
    dtype: GgmlDType,
    dims: &[usize],
    device: &Device,
) -> candle_core::Result<QTensor> {
    const ALIGN: usize = std::mem::align_of::<u64>();
    let storage = if (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
        QStorage::from_data(Cow::Borrowed(bytes), device, dtype)?
    } else {
        QStorage::from_data(Cow::Borrowed(&SharedBytes::copied(bytes)), device, dtype)?
    };
    QTensor::new(storage, dims)
}

/// The blocks of `w`, a `(n, k)` f32 matrix on the CPU, quantized to `quant`: a weight as a
/// GGUF file would hold it.
pub fn quantize(w: &Tensor, quant: QuantType) -> Result<Tensor> {
    let (n, _) = w.dims2()?;
    let q = QTensor::quantize(w, quant.ggml())?;
    let bytes = q.data()?.into_owned();
    let row = bytes.len() / n.max(1);
    Ok(Tensor::from_vec(bytes, (n, row), &Device::Cpu)?)
}

/// The weight that `blocks` hold, dequantized to f32 on the CPU: the format's definition.
pub fn dequantize(blocks: &Tensor, quant: QuantType) -> Result<Tensor> {
    weight::with_host_bytes(blocks, quant, |bytes, [n, k]| {
        Ok(qtensor(bytes, quant.ggml(), &[n, k], &Device::Cpu)?.dequantize(&Device::Cpu)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn quant_types_round_trip_by_name_and_serde() {
        gemma3_interface::named::assert_names_round_trip::<QuantType>();
        let json = serde_json::to_string(&QuantType::Q4K).unwrap();
        assert_eq!(json, "\"q4_k\"");
        assert_eq!(
            serde_json::from_str::<QuantType>(&json).unwrap(),
            QuantType::Q4K
        );
    }

    #[test]
    fn blocks_hold_the_weight_and_qlinear_multiplies_by_it() {
        let w = Tensor::arange(0f32, 64.0 * 3.0, &Device::Cpu)
            .unwrap()
            .affine(1.0 / 64.0, -1.0)
            .unwrap()
            .reshape((3, 64))
            .unwrap();
        let blocks = quantize(&w, QuantType::Q8_0).unwrap();
        assert_eq!(
            blocks.dims(),
            [3, 2 * 34],
            "two 34-byte Q8_0 blocks per row"
        );
        let back = dequantize(&blocks, QuantType::Q8_0).unwrap();
        let err = (back - &w).unwrap().abs().unwrap().max_all().unwrap();
        assert!(err.to_scalar::<f32>().unwrap() < 0.01);
        let x = Tensor::ones((2, 64), DType::BF16, &Device::Cpu).unwrap();
        let y = linear(&x, &blocks, QuantType::Q8_0).unwrap();
        assert_eq!((y.dims(), y.dtype()), ([2, 3].as_slice(), DType::BF16));
    }
}
