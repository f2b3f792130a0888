//! Gemma 3 `config.json`, in every spelling the Hub and transformers use, normalised into one
//! [`TextConfig`].
//!
//! Defaults follow transformers' `Gemma3TextConfig`, because the multimodal Hub files rely on
//! them (their `text_config` lists only what differs). The three size fields that every real
//! file spells out are required, so a truncated file fails instead of building a default model.

use std::path::Path;

use candle_core::DType;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Which attention a decoder layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Attends to the last `sliding_window` positions, including its own.
    Sliding,
    /// Attends to every earlier position.
    Full,
}

impl LayerKind {
    /// `num_layers` layers in which every `n`th (`n` > 0) is full and the others slide:
    /// Gemma 3's pattern (`n` = 6), which llama.cpp hard-codes.
    pub fn every_nth_full(num_layers: usize, n: usize) -> Vec<LayerKind> {
        (0..num_layers)
            .map(|i| {
                if (i + 1) % n == 0 {
                    LayerKind::Full
                } else {
                    LayerKind::Sliding
                }
            })
            .collect()
    }
}

/// RoPE parameters of one layer kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub theta: f64,
    /// Linear position scaling: positions are divided by this factor (1 for none).
    pub linear_factor: f64,
}

/// The normalised text-model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub query_pre_attn_scalar: f64,
    pub sliding_window: usize,
    pub layer_kinds: Vec<LayerKind>,
    pub rope_full: Rope,
    pub rope_sliding: Rope,
    pub final_logit_softcapping: Option<f64>,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// The whole `config.json`: the text model plus where its weights live in the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub text: TextConfig,
    /// Prefix of the text model's tensors, e.g. `model.` or `language_model.model.`.
    pub weight_prefix: String,
    /// Name of the untied LM head tensor, when embeddings are not tied.
    pub lm_head_name: String,
    pub model_type: String,
    /// The float dtype the weights are stored in, where the checkpoint says
    /// (`torch_dtype`, or `dtype` as newer transformers write it); none for quantized files.
    pub stored_dtype: Option<DType>,
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|cause| Error::Json {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::from_json(&value)
    }

    pub fn from_json(value: &Value) -> Result<Self> {
        let root = value
            .as_object()
            .ok_or_else(|| Error::field("(root)", "must be a JSON object"))?;
        let model_type = root
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::field(
                    "model_type",
                    "is missing; expected `gemma3_text` or `gemma3`",
                )
            })?;
        let stored_dtype = stored_dtype(root);
        match model_type {
            "gemma3_text" => Ok(Self {
                text: TextConfig::from_map(root, "")?,
                weight_prefix: "model.".into(),
                lm_head_name: "lm_head.weight".into(),
                model_type: model_type.into(),
                stored_dtype,
            }),
            "gemma3" => {
                let text = root
                    .get("text_config")
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        Error::field(
                            "text_config",
                            "is missing; a `gemma3` config nests the language model there",
                        )
                    })?;
                Ok(Self {
                    text: TextConfig::from_map(text, "text_config.")?,
                    weight_prefix: "language_model.model.".into(),
                    lm_head_name: "language_model.lm_head.weight".into(),
                    model_type: model_type.into(),
                    stored_dtype: stored_dtype.or_else(|| self::stored_dtype(text)),
                })
            }
            other => Err(Error::UnknownModelType {
                found: other.to_string(),
            }),
        }
    }
}

/// The dtype a config's `torch_dtype` (or `dtype`) names, if it is a float dtype this engine
/// runs; any other value is left to `--dtype`.
fn stored_dtype(map: &Map<String, Value>) -> Option<DType> {
    let name = ["torch_dtype", "dtype"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))?;
    match name.trim_start_matches("torch.") {
        "float32" => Some(DType::F32),
        "bfloat16" => Some(DType::BF16),
        "float16" => Some(DType::F16),
        _ => None,
    }
}

/// Typed access to one JSON object, with field names for errors.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl Fields<'_> {
    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn present(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn usize_or(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.present(key) {
            None => default.ok_or_else(|| Error::field(self.name(key), "is missing")),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::field(
                        self.name(key),
                        format!("must be a positive integer, found {v}"),
                    )
                }),
        }
    }

    /// A size that something is allocated by, within its bound (see [`Size`]).
    fn size_or(&self, key: &str, default: Option<usize>, size: Size) -> Result<usize> {
        let n = self.usize_or(key, default)?;
        match size.problem(n) {
            Some(why) => Err(Error::field(self.name(key), why)),
            None => Ok(n),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.present(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| {
                    Error::field(
                        self.name(key),
                        format!("must be a positive number, found {v}"),
                    )
                }),
        }
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.present(key).map(|_| self.f64_or(key, 0.0)).transpose()
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.present(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                Error::field(self.name(key), format!("must be true or false, found {v}"))
            }),
        }
    }

    fn token_ids(&self, key: &str, default: &[u32]) -> Result<Vec<u32>> {
        let bad = |v: &Value| {
            Error::field(
                self.name(key),
                format!("must be a token id or a list of them, found {v}"),
            )
        };
        let one = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        match self.present(key) {
            None => Ok(default.to_vec()),
            Some(Value::Array(items)) => {
                items.iter().map(|v| one(v).ok_or_else(|| bad(v))).collect()
            }
            Some(v) => one(v).map(|id| vec![id]).ok_or_else(|| bad(v)),
        }
    }
}

/// A size that a config (or a GGUF header) gives and memory is allocated by. Each has a bound
/// far above every Gemma 3 (the 27B has 62 layers, 32 heads, a width of 21,504, 262,208 tokens
/// and 131,072 positions), so that a size of 10^18 is refused when the config is read rather
/// than aborting an allocation later.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    Layers,
    Heads,
    /// A hidden, intermediate or head width.
    Width,
    /// A vocabulary, a context or a window.
    Length,
}

impl Size {
    fn max(self) -> usize {
        match self {
            Self::Layers | Self::Heads => 1 << 10,
            Self::Width => 1 << 20,
            Self::Length => 1 << 24,
        }
    }

    /// Why `n` cannot be this size, if it cannot.
    pub(crate) fn problem(self, n: usize) -> Option<String> {
        if n == 0 {
            return Some("must be at least 1, found 0".into());
        }
        (n > self.max()).then(|| {
            format!(
                "is {n}, more than any Gemma 3 has (at most {}); the file is damaged or not a Gemma 3 config",
                self.max()
            )
        })
    }
}

impl TextConfig {
    fn from_map(map: &Map<String, Value>, prefix: &str) -> Result<Self> {
        let f = Fields { map, prefix };
        let activation = f
            .present("hidden_activation")
            .or_else(|| f.present("hidden_act"))
            .and_then(Value::as_str)
            .unwrap_or("gelu_pytorch_tanh");
        if activation != "gelu_pytorch_tanh" {
            return Err(Error::field(
                f.name("hidden_activation"),
                format!("is `{activation}`; Gemma 3 uses `gelu_pytorch_tanh`"),
            ));
        }
        let num_hidden_layers = f.size_or("num_hidden_layers", None, Size::Layers)?;
        let num_attention_heads = f.size_or("num_attention_heads", Some(8), Size::Heads)?;
        let num_key_value_heads = f.size_or("num_key_value_heads", Some(4), Size::Heads)?;
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::field(
                f.name("num_key_value_heads"),
                format!("({num_key_value_heads}) must divide num_attention_heads ({num_attention_heads})"),
            ));
        }
        let head_dim = f.size_or("head_dim", Some(256), Size::Width)?;
        if head_dim % 2 != 0 {
            return Err(Error::field(
                f.name("head_dim"),
                format!("({head_dim}) must be even for RoPE"),
            ));
        }
        let (rope_full, rope_sliding) = parse_rope(&f)?;
        if f.present("attn_logit_softcapping").is_some() {
            tracing::warn!(
                "config sets attn_logit_softcapping; Gemma 3 in transformers ignores it, and so does this engine"
            );
        }
        let bos = f.token_ids("bos_token_id", &[2])?;
        Ok(Self {
            vocab_size: f.size_or("vocab_size", Some(262_208), Size::Length)?,
            hidden_size: f.size_or("hidden_size", None, Size::Width)?,
            intermediate_size: f.size_or("intermediate_size", None, Size::Width)?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.f64_or("rms_norm_eps", 1e-6)?,
            max_position_embeddings: f.size_or(
                "max_position_embeddings",
                Some(131_072),
                Size::Length,
            )?,
            query_pre_attn_scalar: f.f64_or("query_pre_attn_scalar", 256.0)?,
            sliding_window: f.size_or("sliding_window", Some(4096), Size::Length)?,
            layer_kinds: parse_layer_kinds(&f, num_hidden_layers)?,
            rope_full,
            rope_sliding,
            final_logit_softcapping: f.opt_f64("final_logit_softcapping")?,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", true)?,
            bos_token_id: bos.first().copied(),
            eos_token_ids: f.token_ids("eos_token_id", &[1])?,
        })
    }
}

fn parse_layer_kinds(f: &Fields, num_layers: usize) -> Result<Vec<LayerKind>> {
    if let Some(types) = f.present("layer_types") {
        let items = types
            .as_array()
            .ok_or_else(|| Error::field(f.name("layer_types"), "must be a list"))?;
        if items.len() != num_layers {
            return Err(Error::field(
                f.name("layer_types"),
                format!(
                    "has {} entries but num_hidden_layers is {num_layers}",
                    items.len()
                ),
            ));
        }
        return items
            .iter()
            .map(|v| match v.as_str() {
                Some("sliding_attention") => Ok(LayerKind::Sliding),
                Some("full_attention") => Ok(LayerKind::Full),
                _ => Err(Error::field(
                    f.name("layer_types"),
                    format!("has entry {v}; expected `sliding_attention` or `full_attention`"),
                )),
            })
            .collect();
    }
    let pattern = f.usize_or("sliding_window_pattern", Some(6))?;
    if pattern == 0 {
        return Err(Error::field(
            f.name("sliding_window_pattern"),
            "must be at least 1 (every nth layer is global)",
        ));
    }
    Ok(LayerKind::every_nth_full(num_layers, pattern))
}

/// Reads RoPE for full and sliding layers from either `rope_parameters` (nested by layer type,
/// as transformers 5 writes it) or the legacy `rope_theta` / `rope_local_base_freq` /
/// `rope_scaling`, where scaling applies to full-attention layers only.
fn parse_rope(f: &Fields) -> Result<(Rope, Rope)> {
    if let Some(params) = f.present("rope_parameters") {
        let obj = params
            .as_object()
            .ok_or_else(|| Error::field(f.name("rope_parameters"), "must be an object"))?;
        if !obj.contains_key("full_attention") && !obj.contains_key("sliding_attention") {
            return Err(Error::field(
                f.name("rope_parameters"),
                "must be nested by layer type (`full_attention`, `sliding_attention`)",
            ));
        }
        let kind = |key: &str, default_theta: f64| -> Result<Rope> {
            let name = f.name(&format!("rope_parameters.{key}"));
            match obj.get(key).filter(|v| !v.is_null()) {
                None => Ok(Rope {
                    theta: default_theta,
                    linear_factor: 1.0,
                }),
                Some(Value::Object(m)) => rope_from(m, &name, default_theta),
                Some(_) => Err(Error::field(name, "must be an object")),
            }
        };
        return Ok((
            kind("full_attention", 1e6)?,
            kind("sliding_attention", 1e4)?,
        ));
    }
    let theta = f.f64_or("rope_theta", 1e6)?;
    let full = match f.present("rope_scaling") {
        None => Rope {
            theta,
            linear_factor: 1.0,
        },
        Some(Value::Object(m)) => rope_from(m, &f.name("rope_scaling"), theta)?,
        Some(_) => {
            return Err(Error::field(
                f.name("rope_scaling"),
                "must be an object or null",
            ))
        }
    };
    let sliding = Rope {
        theta: f.f64_or("rope_local_base_freq", 1e4)?,
        linear_factor: 1.0,
    };
    Ok((full, sliding))
}

fn rope_from(m: &Map<String, Value>, name: &str, default_theta: f64) -> Result<Rope> {
    let fields = Fields { map: m, prefix: "" };
    let kind = m
        .get("rope_type")
        .or_else(|| m.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let theta = fields
        .f64_or("rope_theta", default_theta)
        .map_err(|_| Error::field(format!("{name}.rope_theta"), "must be a positive number"))?;
    let linear_factor = match kind {
        "default" => 1.0,
        "linear" => fields
            .f64_or("factor", f64::NAN)
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                Error::field(
                    format!("{name}.factor"),
                    "must be a positive number for linear RoPE",
                )
            })?,
        other => {
            return Err(Error::field(
                format!("{name}.rope_type"),
                format!("is `{other}`; supported: `default`, `linear`"),
            ))
        }
    };
    Ok(Rope {
        theta,
        linear_factor,
    })
}
