//! `cargo xtask golden --bless`: trace the model afresh and write the goldens (the only writer
//! of `golden/ops`); [`crate::retrace`] judges a fresh trace against them instead.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use op_matrix_core::golden::{CaseMeta, InputMeta, Inventory, E2E, INVENTORY, MANIFEST};
use op_matrix_core::layout;

use crate::e2e;
use crate::error::{Error, Result};
use crate::inventory::{self, Case};

pub use inference::ops::DTYPES;

/// The committed tiny checkpoints under `golden/models/` that the goldens are traced from.
pub const MODELS: [&str; 2] = ["tiny-text", "tiny-multimodal"];

/// [`MODELS`] with their folders under `golden` (the repository's `golden/`).
pub fn committed_models(golden: &Path) -> Vec<(&'static str, PathBuf)> {
    MODELS
        .into_iter()
        .map(|m| (m, golden.join("models").join(m)))
        .collect()
}

/// Traces every model in every dtype, from its f32 weights and from a bf16 copy of them, so
/// that the load casts of Hub (bf16) checkpoints are in the inventory too.
pub fn trace_all(models: &[(&str, &Path)]) -> Result<Vec<Case>> {
    let copies = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut all: Vec<(String, PathBuf)> = Vec::new();
    for &(name, dir) in models {
        all.push((name.to_string(), dir.to_path_buf()));
        let copy = copies.path().join(name);
        inventory::with_weights_in(dir, DType::BF16, &copy)?;
        all.push((format!("{name} (bf16 weights)"), copy));
    }
    let refs: Vec<(&str, &Path)> = all.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect();
    inventory::inventory(&refs, &DTYPES)
}

/// Rewrites the goldens in `dir` from a fresh trace.
pub fn bless(dir: &Path, models: &[(&str, &Path)]) -> Result<usize> {
    let cases = trace_all(models)?;
    write(dir, &cases)?;
    let e2e = e2e_goldens(models, &DTYPES)?;
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
            .filter(|m: &&CaseMeta| m.dtype == case.dtype)
            .count();
        let mut inputs = Vec::new();
        for t in &case.inputs {
            let (base, strided) = layout::split(t)?;
            let mut bytes = t.dtype().as_str().as_bytes().to_vec();
            bytes.extend(to_bytes(&base)?);
            let next = format!("buf{}", buffers.len());
            let buffer = buffers.entry(bytes).or_insert(next).clone();
            inputs.push(InputMeta {
                dtype: t.dtype(),
                buffer: buffer.clone(),
                strided,
                base_len: base.dim(0)?,
            });
            map.insert(buffer, base);
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
    Ok((
        Inventory {
            candle_version: op_matrix_core::CANDLE_VERSION.to_string(),
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
