//! The bench's checkpoints under `target/bench/models/`, made from a seed and cached:
//! - `tiny`: the committed `golden/models/tiny-text`, its weights copied (f32) or rounded (bf16);
//! - `1b`: a random-weight Gemma 3 1B with the real config, streamed to disk in parallel.
//!
//! Both get a word-level tokenizer whose token `i` is `t<i>` (but for Gemma's four specials in
//! front), so a prompt written as `t12 t17 t9…` is exactly those ids on every engine, and a
//! SentencePiece `tokenizer.model` with the same pieces for llama.cpp's converter. The f32 1B holds the bf16 1B's values exactly,
//! so both dtypes run the same model.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use half::bf16;
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use serde_json::{json, Map, Value};

use super::report::KvShape;
use super::spm;
use crate::tiny_model::{self, weights::Spec, Shape};

/// Bump when the files written here change, so cached checkpoints are rewritten.
const GENERATOR: u64 = 2;
/// Elements drawn per random stream: chunks are independent, so any thread count writes the
/// same bytes.
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Model {
    Tiny,
    #[value(name = "1b")]
    #[serde(rename = "1b")]
    OneB,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Tiny => "tiny",
            Model::OneB => "1b",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    F32,
    Bf16,
    /// The bf16 checkpoint as a GGUF file quantized by llama.cpp's `llama-quantize`.
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q8_0")]
    Q8_0,
    /// llama.cpp's mix: Q4_K, with Q6_K for some of the attention and MLP matrices (and its
    /// fallbacks for rows that 256 does not divide).
    #[value(name = "q4_k_m")]
    Q4KM,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::Q4_0 => "q4_0",
            Dtype::Q8_0 => "q8_0",
            Dtype::Q4KM => "q4_k_m",
        }
    }

    /// `llama-quantize`'s name of a quantized kind; none for the safetensors dtypes.
    pub fn llama_quant(self) -> Option<&'static str> {
        match self {
            Dtype::F32 | Dtype::Bf16 => None,
            Dtype::Q4_0 => Some("Q4_0"),
            Dtype::Q8_0 => Some("Q8_0"),
            Dtype::Q4KM => Some("Q4_K_M"),
        }
    }

    /// The safetensors checkpoint this one is made from: itself, or bf16 for a quantized one.
    pub fn source(self) -> Dtype {
        match self {
            Dtype::F32 => Dtype::F32,
            _ => Dtype::Bf16,
        }
    }

    /// Bytes per element of the KV cache (and of the weights, for the safetensors dtypes):
    /// a quantized file runs with f32 activations, which Candle's CPU quantized kernels take.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::Bf16 => 2,
            _ => 4,
        }
    }

    /// The dtype `gemma3 --dtype` and transformers run it in.
    pub fn run_dtype(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            _ => "f32",
        }
    }

    /// The dtype's name in a safetensors header.
    fn safetensors(self) -> &'static str {
        match self.source() {
            Dtype::Bf16 => "BF16",
            _ => "F32",
        }
    }

    fn torch(self) -> &'static str {
        match self.source() {
            Dtype::Bf16 => "bfloat16",
            _ => "float32",
        }
    }
}

/// A ready checkpoint and what the floor needs to know about it.
pub struct Checkpoint {
    pub model: Model,
    pub dtype: Dtype,
    pub dir: PathBuf,
    pub params: u64,
    pub file_bytes: u64,
    pub vocab: usize,
    pub max_positions: usize,
    pub kv: KvShape,
    /// A quantized kind's folder: its GGUF file and the checkpoint's `tokenizer.json`, which
    /// holds the file's vocabulary. Made by llama.cpp's tools once they are ready.
    pub gguf: Option<Gguf>,
}

/// A quantized checkpoint as a folder of one GGUF file.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub bytes: u64,
}

impl Checkpoint {
    /// Bytes of weights one decode step reads: every parameter once, in the checkpoint dtype,
    /// or the GGUF file's size (its tensors, and a header of a few MB).
    pub fn weight_bytes(&self) -> u64 {
        match &self.gguf {
            Some(g) => g.bytes,
            None => self.params * self.dtype.bytes(),
        }
    }
}

/// Gemma 3 1B's shape.
pub fn one_b_shape() -> Shape {
    Shape {
        vocab: 262_144,
        hidden: 1152,
        intermediate: 6912,
        layers: 26,
        heads: 4,
        kv_heads: 1,
        head_dim: 256,
    }
}

/// Gemma 3 1B's `config.json`, as the Hub has it.
fn one_b_config(dtype: Dtype) -> Value {
    let s = one_b_shape();
    json!({
        "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": null,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": [1, 106],
        "final_logit_softcapping": null,
        "head_dim": s.head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": s.hidden,
        "initializer_range": 0.02,
        "intermediate_size": s.intermediate,
        "max_position_embeddings": 32768,
        "model_type": "gemma3_text",
        "num_attention_heads": s.heads,
        "num_hidden_layers": s.layers,
        "num_key_value_heads": s.kv_heads,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-6,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": null,
        "rope_theta": 1000000.0,
        "sliding_window": 512,
        "sliding_window_pattern": 6,
        "tie_word_embeddings": true,
        "torch_dtype": dtype.torch(),
        "use_cache": true,
        "vocab_size": s.vocab
    })
}

/// Makes (or finds cached) the checkpoint of `model` in `dtype` under `root`.
pub fn ensure(
    root: &Path,
    repo: &Path,
    model: Model,
    dtype: Dtype,
    seed: u64,
    threads: usize,
    bar: &ProgressBar,
) -> Result<Checkpoint> {
    if dtype.source() != dtype {
        let source = ensure(root, repo, model, dtype.source(), seed, threads, bar)?;
        return Ok(Checkpoint { dtype, ..source });
    }
    let dir = root.join(format!("{}-{}", model.name(), dtype.name()));
    let golden = repo.join("golden/models/tiny-text");
    let marker_value = match model {
        Model::Tiny => {
            let source = golden.join("model.safetensors");
            let bytes =
                std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
            json!({"generator": GENERATOR, "model": "tiny", "dtype": dtype.name(),
                   "source_fnv1a": format!("{:016x}", fnv1a(&bytes))})
        }
        Model::OneB => {
            json!({"generator": GENERATOR, "model": "1b", "dtype": dtype.name(), "seed": seed})
        }
    };
    let marker = dir.join("bench-checkpoint.json");
    let cached = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v == marker_value)
        && dir.join("model.safetensors").exists();
    if cached {
        tracing::info!("using cached checkpoint {}", dir.display());
    } else {
        tracing::info!(
            "writing the {} checkpoint in {}",
            model.name(),
            dtype.name()
        );
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let vocab = match model {
            Model::Tiny => {
                write_tiny(&golden, &dir, dtype)?;
                read_config(&dir)?.vocab
            }
            Model::OneB => {
                put(&dir, "config.json", &pretty(&one_b_config(dtype))?)?;
                let specs: Vec<Spec> = tiny_model::weights::text_tensors(&one_b_shape())
                    .into_iter()
                    .map(|(n, s, m, sd)| (format!("model.{n}"), s, m, sd))
                    .collect();
                write_random(
                    &dir.join("model.safetensors"),
                    &specs,
                    dtype,
                    seed,
                    threads,
                    bar,
                )?;
                one_b_shape().vocab
            }
        };
        put(&dir, "tokenizer.json", &word_level_tokenizer(vocab)?)?;
        put_bytes(&dir, "tokenizer.model", &spm::model_proto(vocab))?;
        put(&dir, "bench-checkpoint.json", &pretty(&marker_value)?)?;
    }
    describe(model, dtype, &dir)
}

/// Reads back what the floor needs: the config and the parameter count from the header.
fn describe(model: Model, dtype: Dtype, dir: &Path) -> Result<Checkpoint> {
    let c = read_config(dir)?;
    let weights = dir.join("model.safetensors");
    let header = read_header(&weights)?;
    let params = header
        .iter()
        .map(|(_, _, shape)| shape.iter().product::<usize>() as u64);
    let file_bytes = std::fs::metadata(&weights)
        .with_context(|| format!("reading {}", weights.display()))?
        .len();
    Ok(Checkpoint {
        model,
        dtype,
        dir: dir.to_path_buf(),
        params: params.sum(),
        file_bytes,
        vocab: c.vocab,
        max_positions: c.max_positions,
        kv: c.kv,
        gguf: None,
    })
}

struct Config {
    vocab: usize,
    max_positions: usize,
    kv: KvShape,
}

fn read_config(dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let get = |k: &str| {
        v[k].as_u64()
            .map(|x| x as usize)
            .with_context(|| format!("{} has no integer {k}", path.display()))
    };
    Ok(Config {
        vocab: get("vocab_size")?,
        max_positions: get("max_position_embeddings")?,
        kv: KvShape::gemma3(
            get("num_hidden_layers")?,
            get("num_key_value_heads")?,
            get("head_dim")?,
            get("sliding_window")?,
            get("sliding_window_pattern")?,
        ),
    })
}

/// The committed tiny text model: config with the dtype, weights copied or rounded to bf16.
fn write_tiny(golden: &Path, dir: &Path, dtype: Dtype) -> Result<()> {
    let config = golden.join("config.json");
    let mut c: Value = serde_json::from_str(
        &std::fs::read_to_string(&config)
            .with_context(|| format!("reading {}", config.display()))?,
    )
    .with_context(|| format!("parsing {}", config.display()))?;
    c["torch_dtype"] = json!(dtype.torch());
    put(dir, "config.json", &pretty(&c)?)?;
    let source = golden.join("model.safetensors");
    let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let out = match dtype {
        Dtype::Bf16 => {
            to_bf16(&bytes).with_context(|| format!("converting {}", source.display()))?
        }
        _ => bytes,
    };
    put_bytes(dir, "model.safetensors", &out)
}

/// A safetensors file with every f32 tensor rounded to bf16 (others kept).
fn to_bf16(bytes: &[u8]) -> Result<Vec<u8>> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let mut data: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let (dtype, bytes) = if view.dtype() == StDtype::F32 {
            let b = view
                .data()
                .chunks_exact(4)
                .flat_map(|c| {
                    bf16::from_f32(f32::from_le_bytes(c.try_into().expect("4 bytes"))).to_le_bytes()
                })
                .collect();
            (StDtype::BF16, b)
        } else {
            (view.dtype(), view.data().to_vec())
        };
        data.push((name, dtype, view.shape().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(n, d, s, b)| Ok((n.as_str(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Streams a safetensors file of normal random tensors (`specs`: name, shape, mean, std),
/// values rounded to bf16 and stored in `dtype`, drawing chunks on `threads` threads.
pub fn write_random(
    path: &Path,
    specs: &[Spec],
    dtype: Dtype,
    seed: u64,
    threads: usize,
    bar: &ProgressBar,
) -> Result<()> {
    let elem = dtype.bytes() as usize;
    let total: usize = specs
        .iter()
        .map(|(_, s, _, _)| s.iter().product::<usize>())
        .sum();
    if let Some(dir) = path.parent() {
        super::process::ensure_free_space(dir, (total * elem) as u64, "the checkpoint")?;
    }
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape, _, _) in specs {
        let n: usize = shape.iter().product();
        header.insert(
            name.clone(),
            json!({"dtype": dtype.safetensors(), "shape": shape,
                   "data_offsets": [offset, offset + n * elem]}),
        );
        offset += n * elem;
    }
    let mut header = serde_json::to_string(&header)?;
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let tmp = path.with_extension("safetensors.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(8 << 20, file);
    let io =
        |e: std::io::Error| anyhow::Error::new(e).context(format!("writing {}", tmp.display()));
    w.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)?;
    bar.set_length((header.len() + 8 + offset) as u64);
    bar.set_position(0);

    let threads = threads.max(1);
    let batch = CHUNK * threads * 4;
    let mut buf = vec![0u8; batch * elem];
    for (t, (_, shape, mean, std)) in specs.iter().enumerate() {
        let normal = Normal::new(*mean, *std).context("a tensor spec with a negative std")?;
        let n: usize = shape.iter().product();
        let mut start = 0usize;
        while start < n {
            let len = (n - start).min(batch);
            let first_chunk = start / CHUNK;
            let mut groups: Vec<Vec<(usize, &mut [u8])>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (j, slice) in buf[..len * elem].chunks_mut(CHUNK * elem).enumerate() {
                groups[j % threads].push((first_chunk + j, slice));
            }
            std::thread::scope(|s| {
                for g in groups {
                    s.spawn(move || {
                        for (chunk, out) in g {
                            fill(out, dtype, seed, t, chunk, normal);
                        }
                    });
                }
            });
            w.write_all(&buf[..len * elem]).map_err(io)?;
            bar.inc((len * elem) as u64);
            start += len;
        }
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// One chunk of one tensor, from its own stream of the seed.
fn fill(out: &mut [u8], dtype: Dtype, seed: u64, tensor: usize, chunk: usize, normal: Normal<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((tensor as u64) << 32) | chunk as u64);
    match dtype.source() {
        Dtype::Bf16 => {
            for o in out.chunks_exact_mut(2) {
                o.copy_from_slice(&bf16::from_f32(normal.sample(&mut rng)).to_le_bytes());
            }
        }
        _ => {
            for o in out.chunks_exact_mut(4) {
                let v = bf16::from_f32(normal.sample(&mut rng)).to_f32();
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// (name, dtype, shape) of every tensor, from the header alone.
pub fn read_header(path: &Path) -> Result<Vec<(String, String, Vec<usize>)>> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .with_context(|| format!("reading {}", path.display()))?;
    let len = u64::from_le_bytes(len);
    ensure!(
        len < 100 << 20,
        "{} has a {len}-byte header: not safetensors",
        path.display()
    );
    let mut text = vec![0u8; len as usize];
    f.read_exact(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let v: Map<String, Value> = serde_json::from_slice(&text)
        .with_context(|| format!("parsing the header of {}", path.display()))?;
    let mut out = Vec::new();
    for (name, t) in v {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t["dtype"].as_str().unwrap_or_default().to_owned();
        let Some(shape) = t["shape"].as_array() else {
            bail!("{name} in {} has no shape", path.display());
        };
        let shape = shape
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{name} in {} has a bad shape", path.display()))?;
        out.push((name, dtype, shape));
    }
    Ok(out)
}

/// A word-level tokenizer: `t<i>` is id `i` (the SentencePiece model's specials `<pad>`,
/// `<eos>`, `<bos>`, `<unk>` are ids 0 to 3, so a GGUF file converted from the checkpoint holds
/// this vocabulary), words split on whitespace, `<bos>` first.
pub fn word_level_tokenizer(vocab: usize) -> Result<String> {
    let words: Map<String, Value> = (0..vocab).map(|i| (spm::piece(i).0, json!(i))).collect();
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<bos>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}
            ],
            "pair": [
                {"SpecialToken": {"id": "<bos>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "<unk>"}
    });
    let text = serde_json::to_string(&doc)?;
    let tok = tokenizers::Tokenizer::from_bytes(text.as_bytes()).map_err(anyhow::Error::msg)?;
    let last = vocab - 1;
    let enc = tok
        .encode(format!("t5 t17 t{last}"), true)
        .map_err(anyhow::Error::msg)?;
    ensure!(
        enc.get_ids() == [2, 5, 17, last as u32],
        "the word-level tokenizer encodes wrongly: {:?}",
        enc.get_ids()
    );
    Ok(text)
}

/// The prompt: `<bos>` then ids drawn from the seed, above the specials; every shorter prompt
/// is a prefix of a longer one.
pub fn prompt_ids(vocab: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7072_6f6d_7074);
    std::iter::once(2)
        .chain((1..len).map(|_| rng.random_range(10..vocab as u32)))
        .collect()
}

/// The prompt text that the word-level tokenizer turns into `ids` (it adds the `<bos>`).
pub fn prompt_text(ids: &[u32]) -> String {
    ids.iter()
        .skip(1)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pretty(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

fn put(dir: &Path, name: &str, text: &str) -> Result<()> {
    put_bytes(dir, name, text.as_bytes())
}

fn put_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_1b_has_the_published_parameter_count() {
        let n: usize = tiny_model::weights::text_tensors(&one_b_shape())
            .iter()
            .map(|(_, s, _, _)| s.iter().product::<usize>())
            .sum();
        assert_eq!(n, 999_885_952);
    }

    #[test]
    fn random_checkpoints_are_valid_deterministic_and_equal_across_dtypes() {
        let shape = Shape {
            vocab: 40,
            hidden: 24,
            intermediate: 40,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 8,
        };
        // Chunks of 2^20 elements: a tensor larger than one, so chunking is covered.
        let mut specs = tiny_model::weights::text_tensors(&shape);
        specs.push(("big".into(), vec![CHUNK + 77], 0.0, 1.0));
        let dir = tempfile::tempdir().unwrap();
        let bar = ProgressBar::hidden();
        let write = |name: &str, dtype, threads| {
            let p = dir.path().join(name);
            write_random(&p, &specs, dtype, 9, threads, &bar).unwrap();
            std::fs::read(p).unwrap()
        };
        let bf = write("a.safetensors", Dtype::Bf16, 2);
        assert_eq!(bf, write("b.safetensors", Dtype::Bf16, 3), "thread count");
        let f = write("c.safetensors", Dtype::F32, 1);
        let bf = safetensors::SafeTensors::deserialize(&bf).unwrap();
        let f = safetensors::SafeTensors::deserialize(&f).unwrap();
        assert_eq!(bf.len(), specs.len());
        for (name, shape, mean, std) in &specs {
            let b = bf.tensor(name).unwrap();
            let x = f.tensor(name).unwrap();
            assert_eq!((b.dtype(), b.shape()), (StDtype::BF16, &shape[..]));
            assert_eq!((x.dtype(), x.shape()), (StDtype::F32, &shape[..]));
            let bv: Vec<f32> = b
                .data()
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect();
            let xv: Vec<f32> = x
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(bv, xv, "{name}: f32 must hold the bf16 values");
            let m = xv.iter().sum::<f32>() / xv.len() as f32;
            assert!((m - mean).abs() < 4.0 * std, "{name}: mean {m}");
        }
        // Different chunks draw different values.
        let big = f.tensor("big").unwrap().data();
        assert_ne!(big[..64], big[CHUNK * 4..CHUNK * 4 + 64]);
    }

    #[test]
    fn prompts_are_prefixes_and_tokenize_back_to_their_ids() {
        let long = prompt_ids(512, 100, 3);
        assert_eq!(long[..10], prompt_ids(512, 10, 3)[..]);
        assert_eq!(long[0], 2);
        assert!(long[1..].iter().all(|&i| (10..512).contains(&i)));
        let tok = tokenizers::Tokenizer::from_bytes(word_level_tokenizer(512).unwrap()).unwrap();
        let enc = tok.encode(prompt_text(&long), true).unwrap();
        assert_eq!(enc.get_ids(), &long[..]);
    }
}
