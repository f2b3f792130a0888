//! Writing a safetensors checkpoint as llama.cpp's converter would lay it out as GGUF.

use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use super::{hf_to_gguf, Vocab, ARCHITECTURE, CHAT_TEMPLATE, LAYERS_27B};
use crate::error::{Error, Result};
use crate::load::config::{LayerKind, TextConfig};
use crate::ops::quant::QuantType;

/// The type named `name` (`f32`, `f16`, `bf16` or a block format such as `q4_0` or `q6_k`),
/// as the matrices of [`write_checkpoint`] take it.
pub fn matrix_type(name: &str) -> Result<GgmlDType> {
    match name {
        "f32" => Ok(GgmlDType::F32),
        "f16" => Ok(GgmlDType::F16),
        "bf16" => Ok(GgmlDType::BF16),
        _ => name
            .parse::<QuantType>()
            .map(QuantType::ggml)
            .map_err(|e| Error::Invalid(format!("{e} (or f32, f16, bf16)"))),
    }
}

/// Writes `checkpoint` (safetensors) as a GGUF file at `out`, as llama.cpp's converter lays one
/// out: its metadata keys (the tokenizer and chat template included), its tensor names, norm
/// weights as `1 + w` in f32, and the matrices
/// in `matrices` (f32, f16, bf16 or a block format whose block divides every row). The whole
/// checkpoint is read into memory: meant for the small checkpoints of tests and tools.
pub fn write_checkpoint(
    checkpoint: &crate::load::checkpoint::Checkpoint,
    out: &Path,
    matrices: GgmlDType,
) -> Result<()> {
    write_mixed(checkpoint, out, &|_| matrices)
}

/// [`write_checkpoint`] with each matrix in the type `matrices` gives its GGUF name
/// (`blk.0.attn_v.weight`), as llama.cpp's mixes such as Q4_K_M choose them.
pub fn write_mixed(
    checkpoint: &crate::load::checkpoint::Checkpoint,
    out: &Path,
    matrices: &dyn Fn(&str) -> GgmlDType,
) -> Result<()> {
    let config = &checkpoint.config;
    let mut metadata = metadata_of(&config.text)?;
    let tokenizer = checkpoint.dir().join("tokenizer.json");
    if tokenizer.exists() {
        metadata.extend(Vocab::from_tokenizer_json(&tokenizer)?.metadata());
    }
    if let Some(template) = checkpoint.chat_template()? {
        metadata.push((
            CHAT_TEMPLATE.into(),
            Value::String(template.source().into()),
        ));
    }
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
                let matrices = matrices(&gguf);
                let row = t.dims().last().copied().unwrap_or(0);
                if row % matrices.block_size() != 0 {
                    return Err(Error::Invalid(format!(
                        "{matrices:?} takes rows in blocks of {}; `{gguf}` has rows of {row}",
                        matrices.block_size()
                    )));
                }
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
    // Gemma's own 6 first; past the layer count, every layer slides.
    let pattern = std::iter::once(6)
        .chain(1..=layers + 1)
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
