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

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::load::config::{LayerKind, ModelConfig, Rope, TextConfig};
use crate::load::weights::{TensorStore, Weights};
use crate::ops::quant::QuantType;

/// The architecture this engine runs, as GGUF's `general.architecture` names it.
pub const ARCHITECTURE: &str = "gemma3";

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
        let content = Content::read(&mut BufReader::new(file)).map_err(|e| Error::Gguf {
            path: path.to_path_buf(),
            problem: format!(
                "not a readable GGUF file ({}); re-download it",
                first_line(&e)
            ),
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
        Ok(gguf)
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
        })
    }

    /// The file's tensors, to load onto `device` in `dtype`, with the header already read.
    pub fn weights(self: &Arc<Self>, device: &Device, dtype: DType) -> Result<Weights> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let store = Store {
            gguf: self.clone(),
            file: Mutex::new(BufReader::new(file)),
        };
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
        let hidden_size = self.usize(&key("embedding_length"))?;
        let num_hidden_layers = self.usize(&key("block_count"))?;
        let num_attention_heads = self.usize(&key("attention.head_count"))?;
        let head_dim = self.usize(&key("attention.key_length"))?;
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
        let eos = self.usize_or("tokenizer.ggml.eos_token_id", 1)? as u32;
        let eot = self.opt_usize("tokenizer.ggml.eot_token_id")?;
        Ok(TextConfig {
            vocab_size,
            hidden_size,
            intermediate_size: self.usize(&key("feed_forward_length"))?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: self.usize(&key("attention.head_count_kv"))?,
            head_dim,
            rms_norm_eps: self.f64_or(&key("attention.layer_norm_rms_epsilon"), 1e-6)?,
            max_position_embeddings: self.usize(&key("context_length"))?,
            query_pre_attn_scalar,
            sliding_window: self.usize(&key("attention.sliding_window"))?,
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
            bos_token_id: self
                .opt_usize("tokenizer.ggml.bos_token_id")?
                .map(|b| b as u32),
            eos_token_ids: std::iter::once(eos)
                .chain(eot.map(|e| e as u32).filter(|&e| e != eos))
                .collect(),
        })
    }

    fn error(&self, problem: impl Into<String>) -> Error {
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
        let n = match *v {
            Value::U8(n) => Some(u64::from(n)),
            Value::U16(n) => Some(u64::from(n)),
            Value::U32(n) => Some(u64::from(n)),
            Value::U64(n) => Some(n),
            Value::I8(n) => u64::try_from(n).ok(),
            Value::I16(n) => u64::try_from(n).ok(),
            Value::I32(n) => u64::try_from(n).ok(),
            Value::I64(n) => u64::try_from(n).ok(),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
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

/// Candle's message without the backtrace it appends when `RUST_BACKTRACE` is set.
fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// The GGUF name of a tensor that safetensors checkpoints call `hf` (after their prefix), as
/// llama.cpp's converter renames Gemma 3's.
pub fn hf_to_gguf(hf: &str) -> Option<String> {
    let top = match hf {
        "embed_tokens.weight" => Some("token_embd.weight"),
        "norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = top {
        return Some(name.to_string());
    }
    let rest = hf.strip_prefix("layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let part = match rest {
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "self_attn.q_norm.weight" => "attn_q_norm",
        "self_attn.k_norm.weight" => "attn_k_norm",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        "input_layernorm.weight" => "attn_norm",
        "post_attention_layernorm.weight" => "post_attention_norm",
        "pre_feedforward_layernorm.weight" => "ffn_norm",
        "post_feedforward_layernorm.weight" => "post_ffw_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}.weight"))
}

/// A GGUF file's tensor data, read by safetensors names.
struct Store {
    gguf: Arc<GgufFile>,
    file: Mutex<BufReader<File>>,
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

/// Writes `checkpoint` (safetensors) as a GGUF file at `out`, as llama.cpp's converter lays one
/// out: its metadata keys, its tensor names, norm weights as `1 + w` in f32, and the matrices
/// in `matrices` (f32, f16, bf16 or a block format whose block divides every row). The whole
/// checkpoint is read into memory: meant for the small checkpoints of tests and tools.
pub fn write_checkpoint(
    checkpoint: &crate::load::checkpoint::Checkpoint,
    out: &Path,
    matrices: GgmlDType,
) -> Result<()> {
    let config = &checkpoint.config;
    let metadata = metadata_of(&config.text)?;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for file in checkpoint.weight_files() {
        for (name, t) in candle_core::safetensors::load(file, &Device::Cpu)? {
            let hf = if name == config.lm_head_name {
                "lm_head.weight"
            } else if let Some(hf) = name.strip_prefix(config.weight_prefix.as_str()) {
                hf
            } else {
                continue;
            };
            let Some(gguf) = hf_to_gguf(hf) else {
                continue;
            };
            let values: Vec<f32> = crate::ops::cast(&t, DType::F32)?.flatten_all()?.to_vec1()?;
            let q = if gguf.ends_with("norm.weight") {
                let gain: Vec<f32> = values.into_iter().map(|v| v + 1.0).collect();
                QTensor::quantize(&Tensor::new(gain, &Device::Cpu)?, GgmlDType::F32)?
            } else {
                QTensor::quantize(&Tensor::from_vec(values, t.dims(), &Device::Cpu)?, matrices)?
            };
            tensors.push((gguf, q));
        }
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let mut file = File::create(out).map_err(|e| Error::io(out, e))?;
    candle_core::quantized::gguf_file::write(&mut file, &metadata, &tensors)?;
    Ok(())
}

/// The metadata that [`GgufFile::text_config`] reads back as `text`; an error for what GGUF
/// cannot say (a sliding pattern other than every nth layer, a query scale llama.cpp would not
/// derive).
fn metadata_of(text: &TextConfig) -> Result<Vec<(String, Value)>> {
    let unsayable = |what: String| Error::Invalid(format!("GGUF cannot carry {what}"));
    let layers = text.num_hidden_layers;
    let pattern = (1..=layers.max(1))
        .find(|&n| LayerKind::every_nth_full(layers, n) == text.layer_kinds)
        .ok_or_else(|| unsayable("this model's pattern of sliding and full layers".into()))?;
    let derived = if layers == LAYERS_27B {
        text.hidden_size as f64 / text.num_attention_heads as f64
    } else {
        text.head_dim as f64
    };
    if text.query_pre_attn_scalar != derived {
        return Err(unsayable(format!(
            "query_pre_attn_scalar {} (llama.cpp derives {derived})",
            text.query_pre_attn_scalar
        )));
    }
    if text.eos_token_ids.len() > 2 {
        return Err(unsayable(format!(
            "{} stop tokens (an EOS and an EOT at most)",
            text.eos_token_ids.len()
        )));
    }
    let u32_of = |n: usize| Value::U32(n as u32);
    let key = |k: &str| format!("{ARCHITECTURE}.{k}");
    let mut m = vec![
        (
            "general.architecture".into(),
            Value::String(ARCHITECTURE.into()),
        ),
        (key("context_length"), u32_of(text.max_position_embeddings)),
        (key("embedding_length"), u32_of(text.hidden_size)),
        (key("block_count"), u32_of(layers)),
        (key("feed_forward_length"), u32_of(text.intermediate_size)),
        (
            key("attention.head_count"),
            u32_of(text.num_attention_heads),
        ),
        (
            key("attention.head_count_kv"),
            u32_of(text.num_key_value_heads),
        ),
        (key("attention.key_length"), u32_of(text.head_dim)),
        (key("attention.value_length"), u32_of(text.head_dim)),
        (
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(text.rms_norm_eps as f32),
        ),
        (key("attention.sliding_window"), u32_of(text.sliding_window)),
        (key("attention.sliding_window_pattern"), u32_of(pattern)),
        (
            key("rope.freq_base"),
            Value::F32(text.rope_full.theta as f32),
        ),
        (
            key("rope.local_freq_base"),
            Value::F32(text.rope_sliding.theta as f32),
        ),
    ];
    if text.rope_full.linear_factor != 1.0 {
        m.push((key("rope.scaling.type"), Value::String("linear".into())));
        m.push((
            key("rope.scaling.factor"),
            Value::F32(text.rope_full.linear_factor as f32),
        ));
    }
    if let Some(cap) = text.final_logit_softcapping {
        m.push((key("final_logit_softcapping"), Value::F32(cap as f32)));
    }
    if let Some(bos) = text.bos_token_id {
        m.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(bos)));
    }
    let mut eos = text.eos_token_ids.iter();
    if let Some(&first) = eos.next() {
        m.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(first)));
    }
    if let Some(&eot) = eos.next() {
        m.push(("tokenizer.ggml.eot_token_id".into(), Value::U32(eot)));
    }
    Ok(m)
}
