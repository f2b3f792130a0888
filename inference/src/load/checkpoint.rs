//! A checkpoint directory: `config.json`, safetensors weights and `tokenizer.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::load::config::ModelConfig;
use crate::load::weights::{self, Weights};
use crate::model::Gemma3;
use crate::text::tokenizer::Tokenizer;

pub struct Checkpoint {
    dir: PathBuf,
    pub config: ModelConfig,
    pub weight_files: Vec<PathBuf>,
}

impl Checkpoint {
    /// Reads the config and finds the weight files; loads nothing large.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint directory"),
            ));
        }
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let weight_files = weights::weight_files(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            weight_files,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn weights(&self, device: &Device, dtype: DType) -> Result<Weights> {
        Weights::open(
            &self.weight_files,
            &self.config.weight_prefix,
            device,
            dtype,
        )
    }

    pub fn load_model(&self, device: &Device, dtype: DType) -> Result<Gemma3> {
        Gemma3::load(&self.config, &self.weights(device, dtype)?)
    }

    pub fn tokenizer(&self) -> Result<Tokenizer> {
        Tokenizer::from_file(&self.dir.join("tokenizer.json"))
    }
}
