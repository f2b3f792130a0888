//! A quantized weight as its device holds it: on the CPU, in a format whose every product is
//! this crate's, the blocks where they lie (a GGUF file's mapping); elsewhere, Candle's
//! quantized storage.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor};

use super::{qtensor, QuantType, SharedBytes};
use crate::error::{Error, Result};
use crate::ops::cpu;

/// A quantized `(n, k)` weight held on its device, ready for [`crate::ops::qlinear`] and
/// [`crate::ops::qembed`].
#[derive(Clone)]
pub struct QWeight {
    quant: QuantType,
    dims: [usize; 2],
    held: Held,
}

#[derive(Clone)]
enum Held {
    /// Rows of blocks in parts, in row order: the parts of a stacked projection stay where
    /// their file holds them.
    Host(Vec<SharedBytes>),
    Candle {
        weight: Arc<QTensor>,
        matmul: QMatMul,
    },
}

impl QWeight {
    /// Whether a `quant` weight on `device` is multiplied where its blocks lie: on the CPU,
    /// where this crate computes every product and lookup of the format. Others are copied
    /// into Candle's storage.
    pub fn held_in_place(quant: QuantType, device: &Device) -> bool {
        device.is_cpu() && cpu::qlinear::owns(quant)
    }

    /// The weight whose rows of `k` weights, in blocks, are `parts` in order; only where
    /// [`held_in_place`](Self::held_in_place) on the CPU.
    pub fn in_place(parts: Vec<SharedBytes>, quant: QuantType, k: usize) -> Result<Self> {
        assert!(
            Self::held_in_place(quant, &Device::Cpu),
            "{quant} is Candle's"
        );
        let row = row_bytes(quant, k)?;
        let mut n = 0;
        for part in &parts {
            if row == 0 || part.len() % row != 0 {
                return Err(invalid(
                    quant,
                    format!("{} bytes for rows of {k}", part.len()),
                ));
            }
            n += part.len() / row;
        }
        Ok(Self {
            quant,
            dims: [n, k],
            held: Held::Host(parts),
        })
    }

    /// The `(n, k)` weight whose blocks are `bytes`, placed on `device`: copied, into a buffer
    /// of its own where it is [`held_in_place`](Self::held_in_place), else into Candle's.
    pub fn copied(
        bytes: &[u8],
        quant: QuantType,
        [n, k]: [usize; 2],
        device: &Device,
    ) -> Result<Self> {
        if bytes.len() != n * row_bytes(quant, k)? {
            return Err(invalid(
                quant,
                format!("{} bytes for ({n}, {k})", bytes.len()),
            ));
        }
        if Self::held_in_place(quant, device) {
            return Self::in_place(vec![SharedBytes::copied(bytes)], quant, k);
        }
        let weight = Arc::new(qtensor(bytes, quant.ggml(), &[n, k], device)?);
        Ok(Self {
            quant,
            dims: [n, k],
            held: Held::Candle {
                matmul: QMatMul::from_arc(weight.clone())?,
                weight,
            },
        })
    }

    /// The weight that `blocks` (`u8` rows of whole blocks, as a GGUF file holds them) hold,
    /// placed on `device`.
    pub fn new(blocks: &Tensor, quant: QuantType, device: &Device) -> Result<Self> {
        with_host_bytes(blocks, quant, |bytes, dims| {
            Self::copied(bytes, quant, dims, device)
        })
    }

    pub fn quant(&self) -> QuantType {
        self.quant
    }

    /// `(out, in)`.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The blocks as a `u8` tensor on the host: what a trace records, and what a fallback to
    /// the host multiplies by. Made on demand, so the model holds the weight once.
    pub(crate) fn blocks(&self) -> Result<Tensor> {
        let bytes = match &self.held {
            Held::Host(parts) => parts.iter().flat_map(|p| p.iter().copied()).collect(),
            Held::Candle { weight, .. } => weight.data()?.into_owned(),
        };
        let rows = self.dims[0];
        let row = bytes.len() / rows.max(1);
        Ok(Tensor::from_vec(bytes, (rows, row), &Device::Cpu)?)
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.held {
            Held::Host(parts) => {
                let parts: Vec<&[u8]> = parts.iter().map(|p| &**p).collect();
                Ok(cpu::qlinear::qlinear(x, &parts, self.quant, self.dims[0])?)
            }
            Held::Candle { weight, matmul } if x.device().is_cpu() => {
                let (n, k) = weight.shape().dims2()?;
                if cpu::qlinear::takes(self.quant, x.elem_count() / k.max(1)) {
                    return Ok(cpu::qlinear::qlinear(x, &[&weight.data()?], self.quant, n)?);
                }
                // Candle's product takes f32 activations (and rounds them to 8 bits per block).
                let y = matmul.forward(&x.to_dtype(DType::F32)?)?;
                Ok(y.to_dtype(x.dtype())?)
            }
            Held::Candle { matmul, .. } => Ok(matmul.forward(x)?),
        }
    }

    /// The rows at `ids`, dequantized to f32.
    pub(crate) fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        match &self.held {
            Held::Host(parts) => {
                let [n, k] = self.dims;
                let ids = ids.flatten_all()?.to_vec1::<u32>()?;
                let row = row_bytes(self.quant, k)?;
                let mut rows = Vec::with_capacity(ids.len());
                for &id in &ids {
                    let id = id as usize;
                    if id >= n {
                        return Err(Error::Invalid(format!(
                            "token id {id} is past the {n} rows of the embedding"
                        )));
                    }
                    rows.push(&at(parts, id * row)[..row]);
                }
                let mut out = vec![0f32; ids.len() * k];
                cpu::qlinear::dequantize_rows(&rows, self.quant, &mut out);
                Ok(Tensor::from_vec(out, (ids.len(), k), &Device::Cpu)?)
            }
            Held::Candle { weight, .. } => Ok(weight.embedding(ids)?),
        }
    }
}

/// The bytes from offset `at` of the parts laid end to end.
fn at(parts: &[SharedBytes], mut at: usize) -> &[u8] {
    for part in parts {
        if at < part.len() {
            return &part[at..];
        }
        at -= part.len();
    }
    panic!("offset {at} past the parts' end")
}

/// `read` of the bytes of `blocks`, `u8` rows of whole `quant` blocks, and the `(n, k)` shape
/// of the weight they hold; borrowed in place from CPU storage, copied off other devices.
pub(super) fn with_host_bytes<R>(
    blocks: &Tensor,
    quant: QuantType,
    read: impl FnOnce(&[u8], [usize; 2]) -> Result<R>,
) -> Result<R> {
    let (n, row) = blocks.dims2()?;
    if blocks.dtype() != DType::U8 || row % quant.block_bytes() != 0 {
        return Err(invalid(
            quant,
            format!("{:?} {:?}", blocks.dtype(), blocks.dims()),
        ));
    }
    let dims = [n, row / quant.block_bytes() * quant.block_len()];
    let blocks = blocks.contiguous()?;
    let (storage, layout) = blocks.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => read(
            &cpu.as_slice::<u8>()?[layout.start_offset()..][..n * row],
            dims,
        ),
        _ => read(&blocks.flatten_all()?.to_vec1::<u8>()?, dims),
    }
}

fn row_bytes(quant: QuantType, k: usize) -> Result<usize> {
    if !k.is_multiple_of(quant.block_len()) {
        return Err(invalid(quant, format!("rows of {k} weights")));
    }
    Ok(k / quant.block_len() * quant.block_bytes())
}

fn invalid(quant: QuantType, got: String) -> Error {
    Error::Invalid(format!(
        "{} weight blocks must be u8 rows of whole {}-byte blocks, got {got}",
        quant.name(),
        quant.block_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::quant::{dequantize, quantize};

    #[test]
    fn a_weight_in_parts_multiplies_and_looks_up_as_the_whole_and_refuses_an_id_past_it() {
        // Q5_0: held in place on every architecture.
        let quant = QuantType::Q5_0;
        let (n, k) = (6, 64);
        let w = Tensor::arange(0f32, (n * k) as f32, &Device::Cpu)
            .and_then(|t| t.affine(0.37, 0.0)?.sin()?.reshape((n, k)))
            .unwrap();
        let blocks = quantize(&w, quant).unwrap();
        let bytes = blocks.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let row = bytes.len() / n;
        let whole = QWeight::copied(&bytes, quant, [n, k], &Device::Cpu).unwrap();
        let split = [0..2 * row, 2 * row..3 * row, 3 * row..n * row]
            .map(|r| SharedBytes::copied(&bytes[r]))
            .to_vec();
        let split = QWeight::in_place(split, quant, k).unwrap();
        assert_eq!(split.dims(), [n, k]);
        for m in [1, 7] {
            let x = Tensor::arange(0f32, (m * k) as f32, &Device::Cpu)
                .and_then(|t| t.affine(0.11, 0.0)?.cos()?.reshape((m, k)))
                .unwrap();
            let (a, b) = (whole.forward(&x).unwrap(), split.forward(&x).unwrap());
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "m = {m}");
        }
        let ids = Tensor::new(&[5u32, 0, 2, 3], &Device::Cpu).unwrap();
        let held = dequantize(&blocks, quant).unwrap();
        let want = held
            .index_select(&ids, 0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(split.rows(&ids).unwrap().to_vec2::<f32>().unwrap(), want);
        let past = Tensor::new(&[6u32], &Device::Cpu).unwrap();
        let err = split.rows(&past).unwrap_err().to_string();
        assert!(err.contains("token id 6 is past the 6 rows"), "{err}");
    }
}
