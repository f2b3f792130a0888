//! A GGUF file's tensor data, read by the names safetensors checkpoints give them.

use std::fs::File;
use std::io::BufReader;
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::TensorInfo;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use super::{first_line, hf_to_gguf, GgufFile};
use crate::error::{Error, Result};
use crate::load::weights::TensorStore;
use crate::ops::quant::QuantType;

/// A GGUF file's tensor data, read by safetensors names.
pub(super) struct Store {
    pub(super) gguf: Arc<GgufFile>,
    pub(super) file: Mutex<BufReader<File>>,
}

impl Store {
    /// The GGUF name and table entry of tensor `hf`, checked against `shape`.
    fn info(&self, hf: &str, shape: &[usize]) -> Result<(String, &TensorInfo)> {
        let gguf = &self.gguf;
        let name = hf_to_gguf(hf).ok_or_else(|| {
            gguf.error(format!(
                "has no tensor for `{hf}` (no llama.cpp name for it)"
            ))
        })?;
        let info = gguf
            .content
            .tensor_infos
            .get(&name)
            .ok_or_else(|| gguf.error(format!("lacks the tensor `{name}` (`{hf}`)")))?;
        if info.shape.dims() != shape {
            return Err(Error::TensorShape {
                name,
                expected: shape.to_vec(),
                found: info.shape.dims().to_vec(),
            });
        }
        Ok((name, info))
    }

    /// Tensor `name` as the file holds it.
    fn read(&self, name: &str) -> Result<QTensor> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        self.gguf
            .content
            .tensor(&mut *file, name, &Device::Cpu)
            .map_err(|e| {
                self.gguf
                    .error(format!("tensor `{name}`: {}", first_line(&e)))
            })
    }

    /// Tensor `hf` dequantized to f32 on the host, its values in row-major order. llama.cpp
    /// stores Gemma's norm weights as `1 + w` (its RMSNorm multiplies by the weight alone);
    /// the model adds the 1 itself, so it is taken off here, exactly for gains in [0.5, 2].
    fn values(&self, hf: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (name, _) = self.info(hf, shape)?;
        let values = self
            .read(&name)?
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| {
                self.gguf
                    .error(format!("tensor `{name}`: {}", first_line(&e)))
            })?;
        Ok(if name.ends_with("norm.weight") {
            values.into_iter().map(|v| v - 1.0).collect()
        } else {
            values
        })
    }
}

impl TensorStore for Store {
    fn host(&self, parts: &[(&str, &[usize])]) -> Result<Tensor> {
        let mut values = Vec::new();
        for (name, shape) in parts {
            values.extend(self.values(name, shape)?);
        }
        let mut shape = parts[0].1.to_vec();
        shape[0] = parts.iter().map(|(_, s)| s[0]).sum();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    /// Rows of blocks are independent, so the parts' blocks stack as their rows do.
    fn blocks(&self, parts: &[(&str, &[usize])]) -> Result<Option<(QuantType, Tensor)>> {
        let mut quant = None;
        let mut names = Vec::new();
        for (hf, shape) in parts {
            let (name, info) = self.info(hf, shape)?;
            let q = QuantType::of_ggml(info.ggml_dtype);
            if q.is_none() || quant.is_some_and(|first| Some(first) != q) {
                return Ok(None);
            }
            quant = q;
            names.push(name);
        }
        let Some(quant) = quant else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        for name in &names {
            let tensor = self.read(name)?;
            let data = tensor.data().map_err(|e| {
                self.gguf
                    .error(format!("tensor `{name}`: {}", first_line(&e)))
            })?;
            bytes.extend_from_slice(&data);
        }
        let rows: usize = parts.iter().map(|(_, s)| s[0]).sum();
        let row = bytes.len() / rows.max(1);
        Ok(Some((
            quant,
            Tensor::from_vec(bytes, (rows, row), &Device::Cpu)?,
        )))
    }
}
