//! `cargo xtask golden --bless`: trace the model afresh and write the goldens (the only writer
//! of `golden/ops`); [`crate::retrace`] judges a fresh trace against them instead.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use inference::ops::quant::QuantType;
use op_matrix_core::golden::{CaseMeta, InputMeta, Inventory, BLOCKS, E2E, INVENTORY, MANIFEST};
use op_matrix_core::layout;

use crate::e2e;
use crate::error::{Error, Result};
use crate::inventory::{self, Case};

pub use inference::ops::DTYPES;

/// The committed tiny checkpoints under `golden/models/` that the goldens are traced from, in
/// their own f32 weights and a bf16 copy, with end-to-end goldens.
pub const MODELS: [&str; 2] = ["tiny-text", "tiny-multimodal"];

/// Every block format, each traced as a GGUF copy of the committed checkpoint whose rows its
/// blocks divide: tiny-text's rows of 64 take the 32-weight formats, the K-quants' 256-weight
/// blocks need tiny-wide. So the goldens hold each format's projection and embedding as a
/// model of it launches them, and a preflight can replay the formats a file holds.
pub const QUANTIZED: [(&str, QuantType); 10] = [
    ("tiny-text", QuantType::Q4_0),
    ("tiny-text", QuantType::Q4_1),
    ("tiny-text", QuantType::Q5_0),
    ("tiny-text", QuantType::Q5_1),
    ("tiny-text", QuantType::Q8_0),
    ("tiny-wide", QuantType::Q2K),
    ("tiny-wide", QuantType::Q3K),
    ("tiny-wide", QuantType::Q4K),
    ("tiny-wide", QuantType::Q5K),
    ("tiny-wide", QuantType::Q6K),
];

/// The checkpoints the goldens are traced from, by folder.
pub struct Sources {
    /// [`MODELS`] and their folders.
    pub models: Vec<(&'static str, PathBuf)>,
    /// [`QUANTIZED`] with the folder of each one's checkpoint.
    pub quantized: Vec<(&'static str, PathBuf, QuantType)>,
}

impl Sources {
    /// The committed checkpoints under `golden` (the repository's `golden/`).
    pub fn committed(golden: &Path) -> Self {
        let dir = |m: &str| golden.join("models").join(m);
        Self {
            models: MODELS.into_iter().map(|m| (m, dir(m))).collect(),
            quantized: QUANTIZED.into_iter().map(|(m, q)| (m, dir(m), q)).collect(),
        }
    }

    /// [`Self::models`] borrowed, as the e2e runs take them.
    pub fn models(&self) -> Vec<(&str, &Path)> {
        self.models.iter().map(|(n, p)| (*n, p.as_path())).collect()
    }
}

/// Traces every model in every dtype, from its f32 weights and from a bf16 copy of them, so
/// that the load casts of Hub (bf16) checkpoints are in the inventory too; then each of
/// [`QUANTIZED`] from a GGUF copy in that format.
pub fn trace_all(sources: &Sources) -> Result<Vec<Case>> {
    let copies = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut all: Vec<(String, PathBuf)> = Vec::new();
    for (name, dir) in &sources.models {
        all.push((name.to_string(), dir.clone()));
        let copy = copies.path().join(name);
        inventory::with_weights_in(dir, DType::BF16, &copy)?;
        all.push((format!("{name} (bf16 weights)"), copy));
    }
    for (name, dir, quant) in &sources.quantized {
        let label = format!("{name} ({} gguf)", quant.name());
        let copy = copies.path().join(&label);
        inventory::as_gguf(dir, quant.ggml(), &copy)?;
        all.push((label, copy));
    }
    let refs: Vec<(&str, &Path)> = all.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect();
    inventory::inventory(&refs, &DTYPES)
}

/// Rewrites the goldens in `dir` from a fresh trace.
pub fn bless(dir: &Path, sources: &Sources) -> Result<usize> {
    let cases = trace_all(sources)?;
    write(dir, &cases)?;
    let e2e = e2e_goldens(&sources.models(), &DTYPES)?;
    candle_core::safetensors::save(&e2e, dir.join(E2E))?;
    Ok(cases.len())
}

/// The e2e goldens of every model and dtype, computed on the CPU.
pub fn e2e_goldens(models: &[(&str, &Path)], dtypes: &[DType]) -> Result<HashMap<String, Tensor>> {
    let mut map = HashMap::new();
    for &(name, dir) in models {
        for &dtype in dtypes {
            let run = e2e::run_model(dir, &Device::Cpu, dtype)?;
            let (n, m) = (run.greedy.len(), run.long_logprobs.len());
            map.insert(e2e::key(name, dtype, "logits"), run.logits);
            let greedy = Tensor::from_vec(run.greedy, n, &Device::Cpu)?;
            map.insert(e2e::key(name, dtype, "greedy"), greedy);
            let long = Tensor::from_vec(run.long_logprobs, m, &Device::Cpu)?;
            map.insert(e2e::key(name, dtype, "long_logprobs"), long);
        }
    }
    Ok(map)
}

/// Named tensors of one dtype's golden file.
type TensorFile = (DType, HashMap<String, Tensor>);

/// Traced cases as the golden files hold them.
struct Files {
    inventory: Inventory,
    tensors: Vec<TensorFile>,
    /// [`BLOCKS`]: quantized weights, stored once for every dtype's cases.
    blocks: HashMap<String, Tensor>,
}

/// Splits traced cases into the inventory, the per-dtype tensor maps and the shared blocks.
fn to_files(cases: &[Case]) -> Result<Files> {
    let mut tensors: Vec<TensorFile> = Vec::new();
    let mut metas = Vec::new();
    let mut buffers: HashMap<Vec<u8>, String> = HashMap::new();
    let mut blocks: HashMap<String, Tensor> = HashMap::new();
    let mut block_names: HashMap<Vec<u8>, String> = HashMap::new();
    for case in cases {
        if tensors.last().is_none_or(|(d, _)| *d != case.dtype) {
            tensors.push((case.dtype, HashMap::new()));
            buffers.clear();
        }
        let (_, map) = tensors.last_mut().expect("pushed above");
        let index = metas
            .iter()
            .filter(|m: &&CaseMeta| m.dtype == case.dtype)
            .count();
        let mut inputs = Vec::new();
        for t in &case.inputs {
            let (base, strided) = layout::split(t)?;
            let mut bytes = t.dtype().as_str().as_bytes().to_vec();
            bytes.extend(to_bytes(&base)?);
            let (names, store, prefix) = if t.dtype() == DType::U8 {
                (&mut block_names, &mut blocks, "blocks")
            } else {
                (&mut buffers, &mut *map, "buf")
            };
            let next = format!("{prefix}{}", names.len());
            let buffer = names.entry(bytes).or_insert(next).clone();
            inputs.push(InputMeta {
                dtype: t.dtype(),
                buffer: buffer.clone(),
                strided,
                base_len: base.dim(0)?,
            });
            store.insert(buffer, base);
        }
        map.insert(format!("{index}.out"), case.output.contiguous()?);
        metas.push(CaseMeta {
            index,
            dtype: case.dtype,
            signature: case.key(),
            op: case.signature.op.clone(),
            phases: case.phases.clone(),
            models: case.models.clone(),
            inputs,
            output_shape: case.output.dims().to_vec(),
        });
    }
    Ok(Files {
        inventory: Inventory {
            candle_version: op_matrix_core::CANDLE_VERSION.to_string(),
            cases: metas,
        },
        tensors,
        blocks,
    })
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
        DType::U8 => t.to_vec1::<u8>()?,
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
    let Files {
        inventory,
        tensors,
        blocks,
    } = to_files(cases)?;
    candle_core::safetensors::save(&blocks, dir.join(BLOCKS))?;
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

/// The inventory as a Markdown table for review.
fn manifest(inv: &Inventory) -> String {
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
            c.dtype.as_str(),
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
