//! A checkpoint: a directory of `config.json`, safetensors weights and `tokenizer.json`, or a
//! GGUF file, which holds all three.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::load::config::ModelConfig;
use crate::load::generation_config::{self, GenerationConfig};
use crate::load::gguf::{GgufFile, Vocab};
use crate::load::weights::{self, Weights};
use crate::model::Gemma3;
use crate::ops::quant::QuantType;
use crate::text::chat::ChatTemplate;
use crate::text::tokenizer::Tokenizer;

pub struct Checkpoint {
    dir: PathBuf,
    pub config: ModelConfig,
    source: Source,
}

/// Where the weights are.
enum Source {
    Safetensors(Vec<PathBuf>),
    /// The header, read once to open the checkpoint.
    Gguf(Arc<GgufFile>),
}

impl Checkpoint {
    /// Reads the configuration and finds the weights of a checkpoint directory, or of a GGUF
    /// file (`path` itself, or the one `.gguf` file of a directory without `config.json`);
    /// loads nothing large.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
            return Self::open_gguf(path);
        }
        if !path.is_dir() {
            let why = if path.exists() {
                "not a checkpoint directory or a .gguf file"
            } else {
                "no such checkpoint directory"
            };
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, why),
            ));
        }
        let config_file = path.join("config.json");
        if !config_file.exists() {
            if let Some(gguf) = single_gguf(path)? {
                return Self::open_gguf(&gguf);
            }
        }
        Ok(Self {
            dir: path.to_path_buf(),
            config: ModelConfig::from_file(&config_file)?,
            source: Source::Safetensors(weights::weight_files(path)?),
        })
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let gguf = GgufFile::open(path)?;
        Ok(Self {
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            config: gguf.config()?,
            source: Source::Gguf(Arc::new(gguf)),
        })
    }

    /// The directory holding the checkpoint (for a GGUF file, the file's).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files the weights are read from.
    pub fn weight_files(&self) -> &[PathBuf] {
        match &self.source {
            Source::Safetensors(files) => files,
            Source::Gguf(gguf) => gguf.files(),
        }
    }

    /// The block formats of the quantized weights (none for safetensors), which decide the
    /// quantized cases a preflight replays.
    pub fn quant_types(&self) -> BTreeSet<QuantType> {
        match &self.source {
            Source::Safetensors(_) => BTreeSet::new(),
            Source::Gguf(gguf) => gguf
                .tensors()
                .filter_map(|(_, _, t)| QuantType::of_ggml(t))
                .collect(),
        }
    }

    pub fn weights(&self, device: &Device, dtype: DType) -> Result<Weights> {
        match &self.source {
            Source::Safetensors(files) => {
                Weights::open(files, &self.config.weight_prefix, device, dtype)
            }
            Source::Gguf(gguf) => gguf.weights(device, dtype),
        }
    }

    pub fn load_model(&self, device: &Device, dtype: DType) -> Result<Gemma3> {
        Gemma3::load(&self.config, &self.weights(device, dtype)?)
    }

    /// The checkpoint's tokenizer. A GGUF file carries its own; a `tokenizer.json` beside
    /// it is used instead only if it holds the same vocabulary.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let beside = self.dir.join("tokenizer.json");
        let Source::Gguf(gguf) = &self.source else {
            return Tokenizer::from_file(&beside);
        };
        match (Vocab::read(gguf)?, beside.exists()) {
            (Some(vocab), true) => {
                let tokenizer = Tokenizer::from_file(&beside)?;
                match vocab.disagreement(&tokenizer) {
                    None => Ok(tokenizer),
                    Some(why) => Err(gguf.error(format!(
                        "its tokenizer disagrees with {} ({why}); remove that file, or put \
                         this model's own beside the GGUF file",
                        beside.display()
                    ))),
                }
            }
            (Some(vocab), false) => vocab.tokenizer(gguf.path()),
            (None, true) => Tokenizer::from_file(&beside),
            (None, false) => Err(gguf.error(format!(
                "has no tokenizer (tokenizer.ggml.*); put the model's tokenizer.json in {}",
                self.dir.display()
            ))),
        }
    }

    /// The checkpoint's chat template: a GGUF file's own (`tokenizer.chat_template`), else
    /// the one in `tokenizer_config.json`; `None` for a model without one.
    pub fn chat_template(&self) -> Result<Option<ChatTemplate>> {
        if let Source::Gguf(gguf) = &self.source {
            if let Some(template) = gguf.chat_template()? {
                return Ok(Some(template));
            }
        }
        let config = self.dir.join("tokenizer_config.json");
        if !config.exists() {
            return Ok(None);
        }
        ChatTemplate::from_tokenizer_config(&config)
    }

    /// The sampling defaults of the directory's `generation_config.json`; `None` without one,
    /// and for a GGUF file, which carries none.
    pub fn generation_config(&self) -> Result<Option<GenerationConfig>> {
        match self.generation_config_path() {
            Some(path) if path.exists() => GenerationConfig::from_file(&path).map(Some),
            _ => Ok(None),
        }
    }

    /// Where [`Self::generation_config`] looks.
    pub fn generation_config_path(&self) -> Option<PathBuf> {
        match self.source {
            Source::Safetensors(_) => Some(self.dir.join(generation_config::FILE)),
            Source::Gguf(_) => None,
        }
    }
}

/// The one `.gguf` file of `dir`, if it has exactly one; an error if it has several.
fn single_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => {
            let names: Vec<String> = found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            Err(Error::Invalid(format!(
                "{} holds several GGUF files ({}); name one with --gguf FILE",
                dir.display(),
                names.join(", ")
            )))
        }
    }
}
