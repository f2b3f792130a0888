//! GGUF checkpoints, llama.cpp's format: the header and the `gemma3.*` metadata read into the
//! same [`TextConfig`] that `config.json` gives, and every tensor's type checked, before any
//! tensor data is read.
//!
//! llama.cpp's converter writes no key for the query scale or the sliding pattern: llama.cpp
//! derives them (the scale from the model size, every sixth layer global), and so does this.
//!
//! The weights load by the names safetensors checkpoints give them ([`hf_to_gguf`]). The
//! projections and embeddings stay in their block format (see [`crate::ops::quant`]) where the
//! parts of one share it; everything else is dequantized to f32 on the host and cast to the
//! model dtype.

mod names;
mod scan;
mod store;
mod vocab;
mod write;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::load::config::{LayerKind, ModelConfig, Rope, Size, TextConfig};
use crate::load::weights::Weights;
use crate::text::chat::ChatTemplate;

pub use names::hf_to_gguf;
pub use vocab::Vocab;
pub use write::{matrix_type, write_checkpoint, write_mixed};

/// The architecture this engine runs, as GGUF's `general.architecture` names it.
pub const ARCHITECTURE: &str = "gemma3";

/// The metadata key of the chat template, as llama.cpp writes it.
const CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// The metadata keys of the vocabulary's pieces and of the BOS and EOS ids.
const TOKENS: &str = "tokenizer.ggml.tokens";
const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
const EOS_ID: &str = "tokenizer.ggml.eos_token_id";

/// Gemma 3 27B's layer count: the one size whose queries are scaled by `hidden / heads`
/// rather than by the head size (its `query_pre_attn_scalar` of 168), as llama.cpp decides.
const LAYERS_27B: usize = 62;

/// A GGUF file's header: metadata and the table of tensors, without their data.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl GgufFile {
    /// Reads the header of the GGUF file at `path`; an error if it is not a GGUF file, is cut
    /// short, or holds another architecture than Gemma 3.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| Error::Gguf {
            path: path.to_path_buf(),
            problem: unreadable(&first_line(&e), len, &mut reader),
        })?;
        let gguf = Self {
            path: path.to_path_buf(),
            content,
        };
        let arch = gguf.string("general.architecture")?;
        if arch != ARCHITECTURE {
            return Err(gguf.error(format!(
                "holds a `{arch}` model; this engine runs Gemma 3 (`{ARCHITECTURE}`)"
            )));
        }
        for name in gguf.content.tensor_infos.keys() {
            let (start, size) = gguf.span(name)?;
            if start.checked_add(size).is_none_or(|end| end > len) {
                return Err(gguf.error(format!(
                    "is cut short: tensor `{name}` needs bytes {start}..{} of a file of {len}; re-download it",
                    start.saturating_add(size)
                )));
            }
        }
        Ok(gguf)
    }

    /// Where tensor `name`'s data starts in the file, and its length in bytes.
    fn span(&self, name: &str) -> Result<(u64, u64)> {
        let info = &self.content.tensor_infos[name];
        let dtype = info.ggml_dtype;
        let bad = || {
            self.error(format!(
                "tensor `{name}` has an impossible shape {:?}",
                info.shape.dims()
            ))
        };
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(bad)?;
        if elems % dtype.block_size() as u64 != 0 {
            return Err(self.error(format!(
                "tensor `{name}` holds {elems} weights, not whole {dtype:?} blocks of {}",
                dtype.block_size()
            )));
        }
        let size = (elems / dtype.block_size() as u64)
            .checked_mul(dtype.type_size() as u64)
            .ok_or_else(bad)?;
        let start = self
            .content
            .tensor_data_offset
            .checked_add(info.offset)
            .ok_or_else(bad)?;
        Ok((start, size))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, as the one entry of a list of weight files.
    pub fn files(&self) -> &[PathBuf] {
        std::slice::from_ref(&self.path)
    }

    /// The model's configuration, with the names its weights load by.
    pub fn config(&self) -> Result<ModelConfig> {
        Ok(ModelConfig {
            text: self.text_config()?,
            weight_prefix: String::new(),
            lm_head_name: "lm_head.weight".into(),
            model_type: format!("{ARCHITECTURE} (GGUF)"),
            stored_dtype: self.tensors().find_map(|(name, _, ggml)| {
                (name == "token_embd.weight").then_some(())?;
                match ggml {
                    GgmlDType::F32 => Some(DType::F32),
                    GgmlDType::BF16 => Some(DType::BF16),
                    GgmlDType::F16 => Some(DType::F16),
                    _ => None,
                }
            }),
        })
    }

    /// The file's tensors, to load onto `device` in `dtype`, with the header already read.
    pub fn weights(self: &Arc<Self>, device: &Device, dtype: DType) -> Result<Weights> {
        let store = store::Store::map(self.clone())?;
        Ok(Weights::from_store(Box::new(store), "", device, dtype))
    }

    /// The tensors' names, shapes (row-major, as Candle orders them) and types.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &[usize], GgmlDType)> {
        self.content
            .tensor_infos
            .iter()
            .map(|(name, info)| (name.as_str(), info.shape.dims(), info.ggml_dtype))
    }

    /// The text model's configuration from the `gemma3.*` keys and the tensor table.
    pub fn text_config(&self) -> Result<TextConfig> {
        let key = |k: &str| format!("{ARCHITECTURE}.{k}");
        let hidden_size = self.size(&key("embedding_length"), Size::Width)?;
        let num_hidden_layers = self.size(&key("block_count"), Size::Layers)?;
        let num_attention_heads = self.size(&key("attention.head_count"), Size::Heads)?;
        let head_dim = self.size(&key("attention.key_length"), Size::Width)?;
        let vocab_size = match self.content.tensor_infos.get("token_embd.weight") {
            Some(info) => info.shape.dims()[0],
            None => return Err(self.error("has no `token_embd.weight` tensor")),
        };
        let full_theta = self.f64_or(&key("rope.freq_base"), 1_000_000.0)?;
        let linear_factor = match self.opt_string(&key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => self.f64_or(&key("rope.scaling.factor"), 1.0)?,
            Some(other) => {
                return Err(self.error(format!(
                    "`{}` is `{other}`; Gemma 3 scales RoPE linearly or not at all",
                    key("rope.scaling.type")
                )))
            }
        };
        let query_pre_attn_scalar = if num_hidden_layers == LAYERS_27B {
            hidden_size as f64 / num_attention_heads as f64
        } else {
            head_dim as f64
        };
        let pattern = match self.opt_usize(&key("attention.sliding_window_pattern"))? {
            Some(0) => return Err(self.error("sets a sliding window pattern of 0")),
            Some(n) => n,
            None => 6,
        };
        let eos = self.usize_or(EOS_ID, 1)? as u32;
        let eot = self.opt_usize("tokenizer.ggml.eot_token_id")?;
        Ok(TextConfig {
            vocab_size,
            hidden_size,
            intermediate_size: self.size(&key("feed_forward_length"), Size::Width)?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: self.size(&key("attention.head_count_kv"), Size::Heads)?,
            head_dim,
            rms_norm_eps: self.f64_or(&key("attention.layer_norm_rms_epsilon"), 1e-6)?,
            max_position_embeddings: self.size(&key("context_length"), Size::Length)?,
            query_pre_attn_scalar,
            sliding_window: self.size(&key("attention.sliding_window"), Size::Length)?,
            layer_kinds: LayerKind::every_nth_full(num_hidden_layers, pattern),
            rope_full: Rope {
                theta: full_theta,
                linear_factor,
            },
            rope_sliding: Rope {
                theta: self.f64_or(&key("rope.local_freq_base"), 10_000.0)?,
                linear_factor: 1.0,
            },
            final_logit_softcapping: self.opt_f64(&key("final_logit_softcapping"))?,
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            bos_token_id: self.opt_usize(BOS_ID)?.map(|b| b as u32),
            eos_token_ids: std::iter::once(eos)
                .chain(eot.map(|e| e as u32).filter(|&e| e != eos))
                .collect(),
        })
    }

    /// The file's chat template (`tokenizer.chat_template`), with its vocabulary's BOS and EOS.
    pub fn chat_template(&self) -> Result<Option<ChatTemplate>> {
        let Some(source) = self.opt_string(CHAT_TEMPLATE)? else {
            return Ok(None);
        };
        let bos = self.token_at(BOS_ID)?;
        let eos = self.token_at(EOS_ID)?;
        ChatTemplate::from_source(source, bos, eos)
            .map(|t| Some(t.with_origin(format!("{} `{CHAT_TEMPLATE}`", self.path.display()))))
            .map_err(|e| self.error(format!("`{CHAT_TEMPLATE}`: {e}")))
    }

    pub(crate) fn error(&self, problem: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            problem: problem.into(),
        }
    }

    fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    fn missing(&self, key: &str) -> Error {
        self.error(format!(
            "lacks the metadata key `{key}`; convert the model again with llama.cpp"
        ))
    }

    fn wrong_type(&self, key: &str, wanted: &str, found: &Value) -> Error {
        self.error(format!(
            "metadata key `{key}` is {:?}, not {wanted}",
            found.value_type()
        ))
    }

    fn opt_string(&self, key: &str) -> Result<Option<&str>> {
        match self.metadata().get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    fn string(&self, key: &str) -> Result<&str> {
        self.opt_string(key)?.ok_or_else(|| self.missing(key))
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(v) = self.metadata().get(key) else {
            return Ok(None);
        };
        as_u64(v)
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.metadata().get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "a boolean", v)),
        }
    }

    fn opt_array(&self, key: &str) -> Result<Option<&[Value]>> {
        match self.metadata().get(key) {
            None => Ok(None),
            Some(Value::Array(values)) => Ok(Some(values)),
            Some(v) => Err(self.wrong_type(key, "an array", v)),
        }
    }

    /// Array `key` with each element read by `item`, which says what it wants as `wanted`.
    fn opt_array_of<T>(
        &self,
        key: &str,
        wanted: &str,
        item: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<Vec<T>>> {
        let Some(values) = self.opt_array(key)? else {
            return Ok(None);
        };
        values
            .iter()
            .map(|v| item(v).ok_or_else(|| self.wrong_type(key, wanted, v)))
            .collect::<Result<_>>()
            .map(Some)
    }

    /// The token that the id under `key` names in the file's vocabulary, without reading the
    /// rest of the vocabulary.
    fn token_at(&self, key: &str) -> Result<Option<&str>> {
        let (Some(id), Some(tokens)) = (self.opt_usize(key)?, self.opt_array(TOKENS)?) else {
            return Ok(None);
        };
        Ok(match tokens.get(id) {
            Some(Value::String(token)) => Some(token),
            _ => None,
        })
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
    }

    /// A size that memory is allocated by, within its bound.
    fn size(&self, key: &str, size: Size) -> Result<usize> {
        let n = self.usize(key)?;
        match size.problem(n) {
            Some(why) => Err(self.error(format!("`{key}` {why}"))),
            None => Ok(n),
        }
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        Ok(self.opt_usize(key)?.unwrap_or(default))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.metadata().get(key) {
            None => Ok(None),
            // The converter stored the f32 nearest a decimal (1e-6); its shortest decimal form
            // gives back that decimal, as config.json holds it.
            Some(Value::F32(x)) => Ok(Some(x.to_string().parse().unwrap_or(f64::from(*x)))),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(v) => Err(self.wrong_type(key, "a float", v)),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_f64(key)?.unwrap_or(default))
    }
}

/// A metadata integer of any width, if it is not negative.
fn as_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(n) => Some(u64::from(n)),
        Value::U16(n) => Some(u64::from(n)),
        Value::U32(n) => Some(u64::from(n)),
        Value::U64(n) => Some(n),
        Value::I8(n) => u64::try_from(n).ok(),
        Value::I16(n) => u64::try_from(n).ok(),
        Value::I32(n) => u64::try_from(n).ok(),
        Value::I64(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

/// Why Candle could not read the GGUF header that `reader` reads (a file of `len` bytes): a
/// tensor type it cannot hold, named as ggml names it, with the first tensor of that type; or
/// a file that is damaged.
fn unreadable(candle: &str, len: u64, reader: &mut BufReader<File>) -> String {
    let unknown = candle
        .strip_prefix("unknown dtype for tensor ")
        .and_then(|n| n.trim().parse::<u32>().ok());
    let Some(code) = unknown else {
        return format!("not a readable GGUF file ({candle}); re-download it");
    };
    let tensor = reader
        .rewind()
        .ok()
        .and_then(|()| scan::first_tensor_of_type(reader, len, code))
        .map(|name| format!(" (`{name}`)"))
        .unwrap_or_default();
    // ggml.h's `enum ggml_type`, for the types Candle lacks.
    let name = match code {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    };
    format!(
        "holds a tensor{tensor} of ggml type {code} ({name}), which Candle cannot hold; use a file in F32, \
         F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K to Q6_K"
    )
}

/// Candle's message without the backtrace it appends when `RUST_BACKTRACE` is set.
fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
