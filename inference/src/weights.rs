//! Memory-mapped safetensors checkpoints: one file or sharded with an index.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::ops;

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The weight files of a checkpoint directory: the index's shards, or the single file.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|cause| Error::Json {
            path: index.clone(),
            cause,
        })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                Error::Invalid(format!("{}: has no `weight_map` object", index.display()))
            })?;
        let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        if shards.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: `weight_map` lists no files",
                index.display()
            )));
        }
        return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
    }
    Ok(vec![dir.join(SINGLE_FILE)])
}

/// Tensors of one checkpoint, loaded on demand onto a device in a chosen dtype.
pub struct Weights {
    st: MmapedSafetensors,
    files: Vec<String>,
    prefix: String,
    device: Device,
    dtype: DType,
}

impl Weights {
    pub fn open(files: &[PathBuf], prefix: &str, device: &Device, dtype: DType) -> Result<Self> {
        for file in files {
            check_file(file)?;
        }
        // SAFETY: the files are mapped read-only; like every mmap-based loader, this assumes no
        // other process truncates them while the model is alive.
        let st = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| Error::CorruptWeights {
            path: files[0].clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            st,
            files: files.iter().map(|f| f.display().to_string()).collect(),
            prefix: prefix.to_string(),
            device: device.clone(),
            dtype,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Loads `prefix + name` and checks its shape; the result is in the model dtype.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_exact(&format!("{}{name}", self.prefix), shape)
    }

    /// Loads a tensor by its full name in the file, without the prefix.
    pub fn get_exact(&self, full: &str, shape: &[usize]) -> Result<Tensor> {
        let view = self.st.get(full).map_err(|_| Error::MissingTensor {
            name: full.to_string(),
            files: self.files.clone(),
        })?;
        if view.shape() != shape {
            return Err(Error::TensorShape {
                name: full.to_string(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let tensor = ops::source(self.st.load(full, &self.device)?);
        ops::cast(&tensor, self.dtype)
    }
}

/// A clear error for a missing weight file, before the mmap layer reports it less helpfully.
fn check_file(file: &Path) -> Result<()> {
    std::fs::metadata(file)
        .map(|_| ())
        .map_err(|e| Error::io(file, e))
}
