//! Goldens: for each case, its captured inputs (as base buffers and layouts) and its CPU
//! output, stored per dtype as safetensors next to a reviewed manifest.
//!
//! Files in the golden directory (`golden/ops/`):
//! - `inventory.json`: every case's op, signature, dtype, phases, models and layouts;
//! - `MANIFEST.md`: the same inventory as a table, for review;
//! - `<dtype>.safetensors`: 1-D base buffers `buf<n>`, each stored once however many inputs
//!   view it (the weights feed many cases), and outputs `<index>.out`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use inference::ops::Op;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inventory::{Case, Phase};
use crate::layout::{self, Strided};

pub const INVENTORY: &str = "inventory.json";
pub const MANIFEST: &str = "MANIFEST.md";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMeta {
    pub dtype: String,
    /// Name of the base buffer in the dtype's tensor file.
    pub buffer: String,
    #[serde(flatten)]
    pub strided: Strided,
    pub base_len: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseMeta {
    /// Index of the case within its dtype's tensor file.
    pub index: usize,
    pub dtype: String,
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

/// The golden files as bytes, from disk or embedded in the binary.
pub struct GoldenFiles {
    pub inventory: Vec<u8>,
    pub tensors: Vec<(DType, Vec<u8>)>,
}

/// Named tensors of one dtype's golden file.
type TensorFile = (DType, HashMap<String, Tensor>);

/// Splits traced cases into the inventory and the per-dtype tensor maps.
fn to_files(cases: &[Case]) -> Result<(Inventory, Vec<TensorFile>)> {
    let mut tensors: Vec<TensorFile> = Vec::new();
    let mut metas = Vec::new();
    let mut buffers: HashMap<Vec<u8>, String> = HashMap::new();
    for case in cases {
        if tensors.last().is_none_or(|(d, _)| *d != case.dtype) {
            tensors.push((case.dtype, HashMap::new()));
            buffers.clear();
        }
        let (_, map) = tensors.last_mut().expect("pushed above");
        let index = metas
            .iter()
            .filter(|m: &&CaseMeta| m.dtype == case.dtype.as_str())
            .count();
        let mut inputs = Vec::new();
        for t in &case.inputs {
            let (base, strided) = layout::split(t)?;
            let mut bytes = t.dtype().as_str().as_bytes().to_vec();
            bytes.extend(to_bytes(&base)?);
            let next = format!("buf{}", buffers.len());
            let buffer = buffers.entry(bytes).or_insert(next).clone();
            inputs.push(InputMeta {
                dtype: t.dtype().as_str().to_string(),
                buffer: buffer.clone(),
                strided,
                base_len: base.dim(0)?,
            });
            map.insert(buffer, base);
        }
        map.insert(format!("{index}.out"), case.output.contiguous()?);
        metas.push(CaseMeta {
            index,
            dtype: case.dtype.as_str().to_string(),
            signature: case.key(),
            op: case.signature.op.clone(),
            phases: case.phases.clone(),
            models: case.models.clone(),
            inputs,
            output_shape: case.output.dims().to_vec(),
        });
    }
    Ok((
        Inventory {
            candle_version: crate::CANDLE_VERSION.to_string(),
            cases: metas,
        },
        tensors,
    ))
}

/// The raw little-endian bytes of a contiguous 1-D CPU tensor.
fn to_bytes(t: &Tensor) -> Result<Vec<u8>> {
    Ok(match t.dtype() {
        DType::F32 => t
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::BF16 => t
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::F16 => t
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::U32 => t
            .to_vec1::<u32>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        other => return Err(Error::Layout(format!("dtype {other:?} is not stored"))),
    })
}

/// Writes the goldens of `cases` into `dir`, replacing what is there.
pub fn write(dir: &Path, cases: &[Case]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (inventory, tensors) = to_files(cases)?;
    let json = serde_json::to_string_pretty(&inventory).expect("inventory serialises") + "\n";
    let path = dir.join(INVENTORY);
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    let path = dir.join(MANIFEST);
    std::fs::write(&path, manifest(&inventory)).map_err(|e| Error::io(&path, e))?;
    for (dtype, map) in tensors {
        let path = dir.join(format!("{}.safetensors", dtype.as_str()));
        candle_core::safetensors::save(&map, &path)?;
    }
    Ok(())
}

/// Reads goldens from a directory.
pub fn read_dir(dir: &Path) -> Result<GoldenFiles> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    };
    let inventory = read(INVENTORY)?;
    let inv: Inventory = serde_json::from_slice(&inventory)
        .map_err(|e| Error::format(dir.join(INVENTORY), e.to_string()))?;
    let dtypes: BTreeSet<&str> = inv.cases.iter().map(|c| c.dtype.as_str()).collect();
    let mut tensors = Vec::new();
    for d in dtypes {
        let dtype: DType = d
            .parse()
            .map_err(|_| Error::format(dir.join(INVENTORY), format!("unknown dtype {d}")))?;
        tensors.push((dtype, read(&format!("{d}.safetensors"))?));
    }
    Ok(GoldenFiles { inventory, tensors })
}

/// Parses golden files into replayable cases.
pub fn load(files: &GoldenFiles) -> Result<(Inventory, Vec<StoredCase>)> {
    load_filtered(files, |_| true)
}

/// Only the cases of one dtype (whose tensor file is the only one needed).
pub fn load_dtype(files: &GoldenFiles, dtype: DType) -> Result<(Inventory, Vec<StoredCase>)> {
    load_filtered(files, |meta| meta.dtype == dtype.as_str())
}

fn load_filtered(
    files: &GoldenFiles,
    keep: impl Fn(&CaseMeta) -> bool,
) -> Result<(Inventory, Vec<StoredCase>)> {
    let origin = Path::new("golden");
    let inventory: Inventory = serde_json::from_slice(&files.inventory)
        .map_err(|e| Error::format(origin.join(INVENTORY), e.to_string()))?;
    let mut maps = HashMap::new();
    for (dtype, bytes) in &files.tensors {
        maps.insert(
            dtype.as_str(),
            candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?,
        );
    }
    let mut cases = Vec::new();
    for meta in inventory.cases.iter().filter(|m| keep(m)) {
        let file = format!("{}.safetensors", meta.dtype);
        let map = maps
            .get(meta.dtype.as_str())
            .ok_or_else(|| Error::format(origin.join(&file), "missing"))?;
        let get = |name: String| {
            map.get(&name)
                .cloned()
                .ok_or_else(|| Error::format(origin.join(&file), format!("tensor {name} missing")))
        };
        let mut inputs = Vec::new();
        for m in &meta.inputs {
            inputs.push((get(m.buffer.clone())?, m.strided.clone()));
        }
        let output = get(format!("{}.out", meta.index))?;
        cases.push(StoredCase {
            meta: meta.clone(),
            inputs,
            output,
        });
    }
    Ok((inventory, cases))
}

/// The inventory as a Markdown table for review.
pub fn manifest(inv: &Inventory) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Op inventory of the Gemma 3 forward pass\n");
    let _ = writeln!(
        s,
        "Traced from the model code on the CPU with candle {}. Regenerate with `cargo xtask golden --bless`.\n",
        inv.candle_version
    );
    let mut per_op: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for c in &inv.cases {
        *per_op.entry((c.op.name(), c.dtype.as_str())).or_default() += 1;
    }
    let _ = writeln!(
        s,
        "{} cases.\n\n| dtype | phases | models | signature |\n|---|---|---|---|",
        inv.cases.len()
    );
    for c in &inv.cases {
        let phases: Vec<String> = c.phases.iter().map(|p| p.to_string()).collect();
        let models: Vec<&str> = c.models.iter().map(String::as_str).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` |",
            c.dtype,
            phases.join(", "),
            models.join(", "),
            c.signature
        );
    }
    let _ = writeln!(
        s,
        "\n## Cases per op\n\n| op | dtype | cases |\n|---|---|---|"
    );
    for ((op, dtype), n) in per_op {
        let _ = writeln!(s, "| {op} | {dtype} | {n} |");
    }
    s
}
