//! Options shared by every command that loads a model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use inference::chat::ChatTemplate;
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
    /// The chat template of `tokenizer_config.json`, for instruction-tuned checkpoints.
    pub chat_template: Option<ChatTemplate>,
}

impl Loaded {
    /// Token ids that end a generation: the config's EOS ids and `<end_of_turn>`.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.model.config().eos_token_ids.clone();
        ids.extend(self.tokenizer.token_id("<end_of_turn>"));
        ids
    }
}

impl ModelArgs {
    pub fn load(&self) -> Result<Loaded> {
        let dir = &self.model_dir;
        let checkpoint = Checkpoint::open(dir).context("opening the checkpoint")?;
        let tokenizer = checkpoint.tokenizer()?;
        let config = checkpoint.dir().join("tokenizer_config.json");
        let chat_template = if config.exists() {
            ChatTemplate::from_tokenizer_config(&config).ok()
        } else {
            None
        };
        let device = self.device.open()?;
        let dtype = self.dtype.resolve(&device);
        let model = checkpoint
            .load_model(&device, dtype)
            .context("loading the weights")?;
        Ok(Loaded {
            model,
            tokenizer,
            chat_template,
        })
    }
}
