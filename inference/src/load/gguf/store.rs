//! A GGUF file's tensor data, read by the names safetensors checkpoints give them, from the
//! file mapped into memory. The CPU multiplies by most formats' blocks where the mapping holds
//! them ([`QWeight::held_in_place`]); other weights are copied once, onto their device.

use std::fs::File;
use std::sync::Arc;

use candle_core::quantized::gguf_file::TensorInfo;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use memmap2::{Mmap, MmapOptions};

use super::{first_line, hf_to_gguf, GgufFile};
use crate::error::{Error, Result};
use crate::load::weights::TensorStore;
use crate::ops::quant::{self, Owner, QWeight, QuantType, SharedBytes};

/// A GGUF file's tensor data, read by safetensors names.
pub(super) struct Store {
    gguf: Arc<GgufFile>,
    map: Arc<Mmap>,
}

impl Store {
    /// The tensor data of `gguf`, whose file is mapped read-only.
    pub(super) fn map(gguf: Arc<GgufFile>) -> Result<Self> {
        let path = gguf.path();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: mapped read-only. A file that another process changes while the model holds
        // it gives wrong weights or a SIGBUS, as with every mmap-based loader (llama.cpp,
        // safetensors). Populated: the page faults are the load's, not the first token's.
        let map =
            unsafe { MmapOptions::new().populate().map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(Self {
            gguf,
            map: Arc::new(map),
        })
    }

    /// Tensor `name`'s bytes as the file holds them. Opening checked that they lie within the
    /// file; it may have been cut since.
    fn bytes(&self, name: &str) -> Result<&[u8]> {
        let (start, size) = self.gguf.span(name)?;
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(start, size)| self.map.get(start..start.checked_add(size)?))
            .ok_or_else(|| {
                self.gguf
                    .error(format!("is cut short at tensor `{name}`; re-download it"))
            })
    }

    /// Tensor `name`'s bytes where the mapping holds them, shared with the weight that keeps
    /// them.
    fn shared(&self, name: &str) -> Result<SharedBytes> {
        let bytes = self.bytes(name)?;
        let start = bytes.as_ptr() as usize - self.map.as_ptr() as usize;
        let owner: Owner = self.map.clone();
        Ok(SharedBytes::new(owner, start..start + bytes.len()).expect("a slice of the mapping"))
    }

    /// Gives back this process's pages of `bytes` (a slice of the mapping) once they are
    /// copied: the page cache keeps them, and the load's peak memory stays the model's own
    /// rather than the model plus the whole file.
    fn release(&self, bytes: &[u8]) {
        #[cfg(unix)]
        {
            let offset = bytes.as_ptr() as usize - self.map.as_ptr() as usize;
            // SAFETY: the mapping is a read-only view of a file, so a dropped page reads back
            // the same bytes from the page cache on the next access.
            let advised = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    offset,
                    bytes.len(),
                )
            };
            if let Err(e) = advised {
                tracing::debug!("madvise(DONTNEED) on {}: {e}", self.gguf.path().display());
            }
        }
        #[cfg(not(unix))]
        let _ = bytes;
    }

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

    /// Tensor `name` as the file holds it, on the host.
    fn read(&self, name: &str, info: &TensorInfo) -> Result<QTensor> {
        self.copied(name, |bytes| {
            quant::qtensor(bytes, info.ggml_dtype, info.shape.dims(), &Device::Cpu).map_err(|e| {
                self.gguf
                    .error(format!("tensor `{name}`: {}", first_line(&e)))
            })
        })?
    }

    /// `copy` of tensor `name`'s bytes in the mapping, whose pages are then released.
    fn copied<R>(&self, name: &str, copy: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let bytes = self.bytes(name)?;
        let copy = copy(bytes);
        self.release(bytes);
        Ok(copy)
    }

    /// Tensor `hf` dequantized to f32 on the host, its values in row-major order. llama.cpp
    /// stores Gemma's norm weights as `1 + w` (its RMSNorm multiplies by the weight alone);
    /// the model adds the 1 itself, so it is taken off here, exactly for gains in [0.5, 2].
    fn values(&self, hf: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (name, info) = self.info(hf, shape)?;
        let values = self
            .read(&name, info)?
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
    fn quantized(&self, parts: &[(&str, &[usize])], device: &Device) -> Result<Option<QWeight>> {
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
        let rows: usize = parts.iter().map(|(_, s)| s[0]).sum();
        let cols = parts[0].1[1];
        if QWeight::held_in_place(quant, device) {
            let parts = names.iter().map(|name| self.shared(name));
            return Ok(Some(QWeight::in_place(
                parts.collect::<Result<_>>()?,
                quant,
                cols,
            )?));
        }
        let weight = |bytes: &[u8]| QWeight::copied(bytes, quant, [rows, cols], device);
        let weight = if let [name] = names.as_slice() {
            self.copied(name, weight)?
        } else {
            let mut bytes = Vec::new();
            for name in &names {
                self.copied(name, |part| bytes.extend_from_slice(part))?;
            }
            weight(&bytes)
        };
        weight.map(Some).map_err(|e| {
            self.gguf
                .error(format!("tensor `{}`: {}", names[0], first_line(&e)))
        })
    }
}
