//! Options shared by every command that loads a model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use inference::checkpoint::Checkpoint;
use inference::device::{DTypeChoice, DeviceChoice};
use inference::model::Gemma3;
use inference::tokenizer::Tokenizer;

#[derive(clap::Args)]
pub struct ModelArgs {
    /// Checkpoint directory: config.json, *.safetensors, tokenizer.json.
    #[arg(long)]
    pub model_dir: PathBuf,
    /// `auto`, `cpu`, `cuda[:N]` or `metal[:N]`.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// auto, f32, bf16 or f16.
    #[arg(long, default_value = "auto", value_parser = parse_dtype)]
    pub dtype: DTypeChoice,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: inference::Error| e.to_string())
}

fn parse_dtype(s: &str) -> Result<DTypeChoice, String> {
    s.parse().map_err(|e: inference::Error| e.to_string())
}

pub struct Loaded {
    pub model: Gemma3,
    pub tokenizer: Tokenizer,
}

impl ModelArgs {
    pub fn load(&self) -> Result<Loaded> {
        let dir = &self.model_dir;
        let checkpoint = Checkpoint::open(dir).context("opening the checkpoint")?;
        let tokenizer = checkpoint.tokenizer()?;
        let device = self.device.open()?;
        let dtype = self.dtype.resolve(&device);
        let model = checkpoint
            .load_model(&device, dtype)
            .context("loading the weights")?;
        Ok(Loaded { model, tokenizer })
    }
}
