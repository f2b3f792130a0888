//! Tiny Gemma 3 checkpoints in the real file formats, with deterministic random weights.
//!
//! They stand in for Hub checkpoints in tests: same architecture, same file layout, small
//! enough to commit. The presets cover both layouts the engine reads:
//! - `text`: a `Gemma3ForCausalLM` shaped like gemma-3-1b (one kv head, head_dim * heads !=
//!   hidden, `sliding_window_pattern` 6 with the legacy RoPE keys);
//! - `multimodal`: a `Gemma3ForConditionalGeneration` shaped like gemma-3-4b (nested
//!   `text_config` relying on transformers' defaults, linear RoPE scaling 8 on global layers,
//!   `query_pre_attn_scalar` != head_dim, weights under `language_model.model.`);
//! - `wide`: a `Gemma3ForCausalLM` whose every row is 256 wide, so that GGUF's K-quant block
//!   formats (blocks of 256) fit each matrix; one layer (a sliding one, as llama.cpp wants
//!   one where a window is set) keeps it small.

mod chat_template;
mod tokenizer;
pub(crate) mod weights;

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Text,
    Multimodal,
    Wide,
}

/// The text model's shape, the part of the config the weights depend on.
pub struct Shape {
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

const VOCAB: usize = 512;

impl Preset {
    fn shape(self) -> Shape {
        match self {
            Preset::Text => Shape {
                vocab: VOCAB,
                hidden: 64,
                intermediate: 128,
                layers: 6,
                heads: 4,
                kv_heads: 1,
                head_dim: 32,
            },
            Preset::Wide => Shape {
                vocab: VOCAB,
                hidden: 256,
                intermediate: 256,
                layers: 1,
                heads: 4,
                kv_heads: 1,
                head_dim: 64,
            },
            Preset::Multimodal => Shape {
                vocab: VOCAB,
                hidden: 48,
                intermediate: 96,
                layers: 4,
                heads: 4,
                kv_heads: 2,
                head_dim: 16,
            },
        }
    }

    fn config(self, s: &Shape) -> Value {
        let eos = json!([
            tokenizer::special_id("<eos>"),
            tokenizer::special_id("<end_of_turn>")
        ]);
        match self {
            Preset::Text | Preset::Wide => json!({
                "architectures": ["Gemma3ForCausalLM"],
                "attention_bias": false,
                "attention_dropout": 0.0,
                "attn_logit_softcapping": null,
                "bos_token_id": tokenizer::special_id("<bos>"),
                "cache_implementation": "hybrid",
                "eos_token_id": eos,
                "final_logit_softcapping": null,
                "head_dim": s.head_dim,
                "hidden_activation": "gelu_pytorch_tanh",
                "hidden_size": s.hidden,
                "initializer_range": 0.02,
                "intermediate_size": s.intermediate,
                "max_position_embeddings": 1024,
                "model_type": "gemma3_text",
                "num_attention_heads": s.heads,
                "num_hidden_layers": s.layers,
                "num_key_value_heads": s.kv_heads,
                "pad_token_id": tokenizer::special_id("<pad>"),
                "query_pre_attn_scalar": s.head_dim,
                "rms_norm_eps": 1e-6,
                "rope_local_base_freq": 10000.0,
                "rope_scaling": null,
                "rope_theta": 1000000.0,
                "sliding_window": 8,
                "sliding_window_pattern": 6,
                "torch_dtype": "float32",
                "use_cache": true,
                "vocab_size": s.vocab
            }),
            Preset::Multimodal => json!({
                "architectures": ["Gemma3ForConditionalGeneration"],
                "boi_token_index": tokenizer::special_id("<start_of_image>"),
                "eoi_token_index": tokenizer::special_id("<end_of_image>"),
                "eos_token_id": eos,
                "image_token_index": tokenizer::special_id("<image_soft_token>"),
                "initializer_range": 0.02,
                "mm_tokens_per_image": 4,
                "model_type": "gemma3",
                "text_config": {
                    "head_dim": s.head_dim,
                    "hidden_size": s.hidden,
                    "intermediate_size": s.intermediate,
                    "max_position_embeddings": 1024,
                    "model_type": "gemma3_text",
                    "num_attention_heads": s.heads,
                    "num_hidden_layers": s.layers,
                    "num_key_value_heads": s.kv_heads,
                    "query_pre_attn_scalar": 24,
                    "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 6,
                    "sliding_window_pattern": 2,
                    "vocab_size": s.vocab
                },
                "torch_dtype": "float32",
                "vision_config": weights::VISION_CONFIG.clone()
            }),
        }
    }

    fn weight_prefix(self) -> &'static str {
        match self {
            Preset::Text | Preset::Wide => "model.",
            Preset::Multimodal => "language_model.model.",
        }
    }
}

pub fn write(dir: &Path, preset: Preset, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let shape = preset.shape();
    let put = |name: &str, contents: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    };
    put("config.json", pretty(&preset.config(&shape))?.as_bytes())?;
    put(
        "generation_config.json",
        pretty(&generation_config())?.as_bytes(),
    )?;
    put(
        "tokenizer.json",
        tokenizer::tokenizer_json(shape.vocab)?.as_bytes(),
    )?;
    put(
        "tokenizer_config.json",
        pretty(&tokenizer_config())?.as_bytes(),
    )?;
    let vision = matches!(preset, Preset::Multimodal);
    put(
        "model.safetensors",
        &weights::safetensors(&shape, preset.weight_prefix(), vision, seed)?,
    )?;
    println!("wrote {preset:?} checkpoint to {}", dir.display());
    Ok(())
}

fn pretty(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

fn generation_config() -> Value {
    json!({
        "bos_token_id": tokenizer::special_id("<bos>"),
        "eos_token_id": [tokenizer::special_id("<eos>"), tokenizer::special_id("<end_of_turn>")],
        "pad_token_id": tokenizer::special_id("<pad>"),
        "do_sample": true,
        "top_k": 64,
        "top_p": 0.95
    })
}

fn tokenizer_config() -> Value {
    json!({
        "add_bos_token": true,
        "add_eos_token": false,
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
        "chat_template": chat_template::GEMMA3,
        "clean_up_tokenization_spaces": false,
        "model_max_length": 1024,
        "spaces_between_special_tokens": false,
        "tokenizer_class": "GemmaTokenizer"
    })
}
