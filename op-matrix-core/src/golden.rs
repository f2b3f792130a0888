//! Goldens: for each case, its captured inputs (as base buffers and layouts) and its CPU
//! output, stored per dtype as safetensors next to a reviewed manifest.
//!
//! Files in the golden directory (`golden/ops/`):
//! - `inventory.json`: every case's op, signature, dtype, phases, models and layouts;
//! - `MANIFEST.md`: the same inventory as a table, for review;
//! - `e2e.safetensors`: the whole model's outputs, which the op-matrix checks end to end;
//! - `<dtype>.safetensors`: 1-D base buffers `buf<n>`, each stored once however many inputs
//!   view it (the weights feed many cases), and outputs `<index>.out`;
//! - `blocks.safetensors`: the quantized weights' blocks (`u8` buffers `blocks<n>`), which the
//!   cases of every activation dtype share.
//!
//! This module reads them, from a directory or from the copy compiled into the crate; the
//! op-matrix harness writes them.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use inference::ops::Op;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::Strided;

pub const INVENTORY: &str = "inventory.json";
pub const MANIFEST: &str = "MANIFEST.md";
/// The whole-model goldens: logits, greedy tokens and long-text log-probs per model and dtype.
pub const E2E: &str = "e2e.safetensors";
/// The `u8` buffers of quantized weights, shared by every dtype's cases.
pub const BLOCKS: &str = "blocks.safetensors";

/// Where in a model's life a case was traced: prefill and decode launch different kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Load,
    Prefill,
    Decode,
    Score,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Load => "load",
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
            Phase::Score => "score",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMeta {
    #[serde(with = "inference::ops::dtype_name")]
    pub dtype: DType,
    /// Name of the base buffer in the dtype's tensor file ([`BLOCKS`] for `u8` inputs).
    pub buffer: String,
    #[serde(flatten)]
    pub strided: Strided,
    pub base_len: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseMeta {
    /// Index of the case within its dtype's tensor file.
    pub index: usize,
    #[serde(with = "inference::ops::dtype_name")]
    pub dtype: DType,
    pub signature: String,
    pub op: Op,
    pub phases: BTreeSet<Phase>,
    pub models: BTreeSet<String>,
    pub inputs: Vec<InputMeta>,
    pub output_shape: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub candle_version: String,
    pub cases: Vec<CaseMeta>,
}

/// A case ready to replay: inputs as CPU base buffers with their layouts, and the golden.
#[derive(Debug, Clone)]
pub struct StoredCase {
    pub meta: CaseMeta,
    pub inputs: Vec<(Tensor, Strided)>,
    pub output: Tensor,
}

/// The golden files: the parsed inventory, each dtype's tensor file and [`BLOCKS`] as
/// bytes, read from disk or borrowed from the binary.
struct GoldenFiles {
    inventory: Inventory,
    tensors: Vec<(DType, Cow<'static, [u8]>)>,
    blocks: Cow<'static, [u8]>,
}

/// Where goldens are read from: the copy compiled into the crate (so that the op-matrix and
/// the CLI's preflight run with no checkout), or a directory laid out as `golden/ops/`.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Embedded,
    Dir(PathBuf),
}

macro_rules! embedded {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../golden/ops/",
            $name
        ))
    };
}

impl Source {
    /// `dir` when given, else the embedded goldens.
    pub fn from_dir(dir: Option<&Path>) -> Self {
        dir.map_or(Self::Embedded, |d| Self::Dir(d.to_path_buf()))
    }

    /// The cases of the given dtypes (every dtype when empty), ready to replay.
    pub fn cases(&self, dtypes: &[DType]) -> Result<Vec<StoredCase>> {
        let keep = |d: &DType| dtypes.is_empty() || dtypes.contains(d);
        let (origin, files) = match self {
            Self::Dir(dir) => (dir.as_path(), read_dir(dir, keep)?),
            Self::Embedded => {
                let origin = Path::new("golden/ops");
                let inventory = parse_inventory(embedded!("inventory.json"), origin)?;
                (
                    origin,
                    GoldenFiles {
                        inventory,
                        tensors: [
                            (DType::F32, embedded!("f32.safetensors").as_slice()),
                            (DType::BF16, embedded!("bf16.safetensors").as_slice()),
                            (DType::F16, embedded!("f16.safetensors").as_slice()),
                        ]
                        .into_iter()
                        .filter(|(d, _)| keep(d))
                        .map(|(d, bytes)| (d, Cow::Borrowed(bytes)))
                        .collect(),
                        blocks: Cow::Borrowed(embedded!("blocks.safetensors")),
                    },
                )
            }
        };
        load(&files, origin, |meta| keep(&meta.dtype))
    }

    /// The whole-model goldens ([`E2E`]) by name, on the CPU.
    pub fn e2e(&self) -> Result<HashMap<String, Tensor>> {
        Ok(match self {
            Self::Embedded => {
                candle_core::safetensors::load_buffer(embedded!("e2e.safetensors"), &Device::Cpu)?
            }
            Self::Dir(dir) => {
                let path = dir.join(E2E);
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                    .map_err(|e| Error::format(&path, e.to_string()))?
            }
        })
    }
}

/// Reads the goldens of the dtypes `keep` accepts from a directory.
fn read_dir(dir: &Path, keep: impl Fn(&DType) -> bool) -> Result<GoldenFiles> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    };
    let inventory = parse_inventory(&read(INVENTORY)?, dir)?;
    let dtypes: BTreeSet<&str> = inventory
        .cases
        .iter()
        .filter(|c| keep(&c.dtype))
        .map(|c| c.dtype.as_str())
        .collect();
    let mut tensors = Vec::new();
    for d in dtypes {
        let dtype: DType = d.parse().expect("parsed from the inventory");
        tensors.push((dtype, Cow::Owned(read(&format!("{d}.safetensors"))?)));
    }
    let blocks = Cow::Owned(read(BLOCKS)?);
    Ok(GoldenFiles {
        inventory,
        tensors,
        blocks,
    })
}

/// The inventory of the golden directory `origin` (named in errors).
fn parse_inventory(bytes: &[u8], origin: &Path) -> Result<Inventory> {
    serde_json::from_slice(bytes).map_err(|e| Error::format(origin.join(INVENTORY), e.to_string()))
}

/// The cases `keep` accepts; `origin` names the files in errors.
fn load(
    files: &GoldenFiles,
    origin: &Path,
    keep: impl Fn(&CaseMeta) -> bool,
) -> Result<Vec<StoredCase>> {
    let mut maps = HashMap::new();
    for (dtype, bytes) in &files.tensors {
        maps.insert(
            *dtype,
            candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?,
        );
    }
    let blocks = candle_core::safetensors::load_buffer(&files.blocks, &Device::Cpu)?;
    let mut cases = Vec::new();
    for meta in files.inventory.cases.iter().filter(|m| keep(m)) {
        let file = format!("{}.safetensors", meta.dtype.as_str());
        let map = maps
            .get(&meta.dtype)
            .ok_or_else(|| Error::format(origin.join(&file), "missing"))?;
        let get = |map: &HashMap<String, Tensor>, file: &str, name: &str| {
            map.get(name)
                .cloned()
                .ok_or_else(|| Error::format(origin.join(file), format!("tensor {name} missing")))
        };
        let mut inputs = Vec::new();
        for m in &meta.inputs {
            let base = if m.dtype == DType::U8 {
                get(&blocks, BLOCKS, &m.buffer)?
            } else {
                get(map, &file, &m.buffer)?
            };
            inputs.push((base, m.strided.clone()));
        }
        let output = get(map, &file, &format!("{}.out", meta.index))?;
        cases.push(StoredCase {
            meta: meta.clone(),
            inputs,
            output,
        });
    }
    Ok(cases)
}
