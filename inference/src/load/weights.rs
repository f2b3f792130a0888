//! A checkpoint's weights, loaded by name onto a device in the model dtype, from safetensors
//! (one file or sharded with an index) or from a GGUF file ([`crate::load::gguf`]).
//!
//! Each tensor is read once, straight from the file into the buffer the tensor will own. Candle's
//! CPU tensors must own their memory, so a mapping of the file cannot be borrowed; copying out of
//! one would leave its pages counted in the process's memory on top of the copy. Reading keeps the
//! peak at one copy of the weights. The files are mapped only to parse their headers.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use safetensors::{tensor::TensorInfo, Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::ops;
use crate::ops::quant::QWeight;

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The weight files of a checkpoint directory: the index's shards, or the single file.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|cause| Error::Json {
            path: index.clone(),
            cause,
        })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                Error::Invalid(format!("{}: has no `weight_map` object", index.display()))
            })?;
        let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        if shards.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: `weight_map` lists no files",
                index.display()
            )));
        }
        // A shard is a file of the checkpoint directory: an index naming `/etc/passwd` or
        // `../other/model.safetensors` does not get it read.
        let outside = shards.iter().find(|s| {
            !Path::new(s)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        });
        if let Some(shard) = outside {
            return Err(Error::Invalid(format!(
                "{}: `weight_map` names `{shard}`, outside the checkpoint directory; shards are files beside the index",
                index.display()
            )));
        }
        return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
    }
    Ok(vec![dir.join(SINGLE_FILE)])
}

/// One weight file: its handle and where each tensor's bytes start.
struct Shard {
    path: PathBuf,
    file: File,
    data_start: u64,
}

/// Where one tensor lives.
struct Entry {
    shard: usize,
    info: TensorInfo,
}

/// A checkpoint's tensor data, read onto the host by name.
pub(crate) trait TensorStore {
    /// The tensors `parts` (full names, each with its shape) on the host, concatenated along
    /// their first dim, in the dtype they are stored in (or f32 for a quantized store).
    fn host(&self, parts: &[(&str, &[usize])]) -> Result<Tensor>;

    /// The matrices `parts` as one weight in their quantized format, rows concatenated, on
    /// `device`; none when they are not all stored in one such format.
    fn quantized(&self, _parts: &[(&str, &[usize])], _device: &Device) -> Result<Option<QWeight>> {
        Ok(None)
    }
}

/// Tensors of one checkpoint, loaded on demand onto a device in a chosen dtype.
pub struct Weights {
    store: Box<dyn TensorStore>,
    prefix: String,
    device: Device,
    dtype: DType,
}

impl Weights {
    /// The safetensors `files` of a checkpoint, whose tensor names start with `prefix`.
    pub fn open(files: &[PathBuf], prefix: &str, device: &Device, dtype: DType) -> Result<Self> {
        Ok(Self::from_store(
            Box::new(Safetensors::open(files)?),
            prefix,
            device,
            dtype,
        ))
    }

    pub(crate) fn from_store(
        store: Box<dyn TensorStore>,
        prefix: &str,
        device: &Device,
        dtype: DType,
    ) -> Self {
        Self {
            store,
            prefix: prefix.to_string(),
            device: device.clone(),
            dtype,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Loads `prefix + name` and checks its shape; the result is in the model dtype.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_exact(&format!("{}{name}", self.prefix), shape)
    }

    /// Loads a tensor by its full name in the file, without the prefix.
    pub fn get_exact(&self, full: &str, shape: &[usize]) -> Result<Tensor> {
        self.place(self.store.host(&[(full, shape)])?)
    }

    /// Loads `prefix + name` for each `(name, rows)` and stacks them along the first dim, as
    /// one `(Σ rows, cols)` tensor (from safetensors, read straight into one buffer: fused
    /// projections cost no extra copy at load).
    pub fn get_stacked(&self, parts: &[(&str, usize)], cols: usize) -> Result<Tensor> {
        self.with_parts(parts, cols, |parts| self.place(self.store.host(parts)?))
    }

    /// Like [`get_stacked`](Self::get_stacked), but kept in the checkpoint's block format
    /// when every part is stored quantized in the same one; none otherwise.
    pub fn get_quantized(&self, parts: &[(&str, usize)], cols: usize) -> Result<Option<QWeight>> {
        self.with_parts(parts, cols, |parts| {
            self.store.quantized(parts, &self.device)
        })
    }

    /// Calls `f` with `parts` as the store names them: full names, each with its `(rows,
    /// cols)` shape.
    fn with_parts<R>(
        &self,
        parts: &[(&str, usize)],
        cols: usize,
        f: impl FnOnce(&[(&str, &[usize])]) -> Result<R>,
    ) -> Result<R> {
        let names: Vec<String> = parts
            .iter()
            .map(|(name, _)| format!("{}{name}", self.prefix))
            .collect();
        let shapes: Vec<[usize; 2]> = parts.iter().map(|&(_, rows)| [rows, cols]).collect();
        let parts: Vec<(&str, &[usize])> = names
            .iter()
            .zip(&shapes)
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        f(&parts)
    }

    /// Moves a tensor read on the host to the model's device and dtype.
    fn place(&self, tensor: Tensor) -> Result<Tensor> {
        let tensor = if self.device.is_cpu() {
            tensor
        } else {
            tensor.to_device(&self.device)?
        };
        ops::cast(&ops::source(tensor), self.dtype)
    }
}

/// Safetensors files, one or the shards of an index.
struct Safetensors {
    shards: Vec<Shard>,
    entries: HashMap<String, Entry>,
}

impl Safetensors {
    fn open(files: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::with_capacity(files.len());
        let mut entries = HashMap::new();
        for (i, path) in files.iter().enumerate() {
            let (shard, infos) = open_shard(path)?;
            shards.push(shard);
            for (name, info) in infos {
                entries.insert(name, Entry { shard: i, info });
            }
        }
        Ok(Self { shards, entries })
    }

    fn entry(&self, full: &str, shape: &[usize]) -> Result<&Entry> {
        let entry = self.entries.get(full).ok_or_else(|| Error::MissingTensor {
            name: full.to_string(),
            files: self
                .shards
                .iter()
                .map(|s| s.path.display().to_string())
                .collect(),
        })?;
        if entry.info.shape != shape {
            return Err(Error::TensorShape {
                name: full.to_string(),
                expected: shape.to_vec(),
                found: entry.info.shape.clone(),
            });
        }
        Ok(entry)
    }
}

impl TensorStore for Safetensors {
    fn host(&self, parts: &[(&str, &[usize])]) -> Result<Tensor> {
        let entries = parts
            .iter()
            .map(|(name, shape)| self.entry(name, shape))
            .collect::<Result<Vec<_>>>()?;
        let dtype = entries[0].info.dtype;
        if entries.iter().any(|e| e.info.dtype != dtype) {
            let names: Vec<&str> = parts.iter().map(|p| p.0).collect();
            return Err(Error::Weights {
                path: self.shards[entries[0].shard].path.clone(),
                problem: format!(
                    "stores {names:?} in different dtypes; this engine loads them as one matrix"
                ),
            });
        }
        let mut shape = parts[0].1.to_vec();
        shape[0] = parts.iter().map(|(_, s)| s[0]).sum();
        read(&self.shards, dtype, &entries, &shape, parts[0].0)
    }
}

fn open_shard(path: &Path) -> Result<(Shard, Vec<(String, TensorInfo)>)> {
    if path.is_dir() {
        return Err(Error::Weights {
            path: path.to_path_buf(),
            problem: "is a directory, where the weights file should be".into(),
        });
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let corrupt = |reason: String| Error::CorruptWeights {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: mapped read-only and only its header is read, here; like every mmap-based
    // loader, this assumes no other process truncates the file meanwhile.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let (header, metadata) =
        SafeTensors::read_metadata(&map).map_err(|e| corrupt(e.to_string()))?;
    let infos = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.clone()))
        .collect();
    let shard = Shard {
        path: path.to_path_buf(),
        file,
        data_start: (8 + header) as u64,
    };
    Ok((shard, infos))
}

/// The tensors `entries`, all of dtype `dtype`, concatenated in order into one host tensor of
/// `shape`; `first` names the first in errors.
fn read(
    shards: &[Shard],
    dtype: Dtype,
    entries: &[&Entry],
    shape: &[usize],
    first: &str,
) -> Result<Tensor> {
    let shape = shape.to_vec();
    let tensor = match dtype {
        Dtype::BF16 => {
            let words: Vec<u16> = read_words(shards, entries)?;
            Tensor::from_vec(
                bytemuck::allocation::cast_vec::<u16, bf16>(words),
                shape,
                &Device::Cpu,
            )
        }
        Dtype::F16 => {
            let words: Vec<u16> = read_words(shards, entries)?;
            Tensor::from_vec(
                bytemuck::allocation::cast_vec::<u16, f16>(words),
                shape,
                &Device::Cpu,
            )
        }
        Dtype::F32 => Tensor::from_vec(read_words::<f32>(shards, entries)?, shape, &Device::Cpu),
        other => {
            return Err(Error::Weights {
                path: shards[entries[0].shard].path.clone(),
                problem: format!(
                    "holds `{first}` as {other:?}; this engine runs weights in f32, bf16 or f16 (save the checkpoint in one of them, or use a GGUF file)"
                ),
            });
        }
    }?;
    Ok(tensor)
}

/// The bytes of `entries`, back to back, as little-endian words of `T` (every supported
/// platform is little-endian, as safetensors is).
fn read_words<T: bytemuck::Pod + bytemuck::Zeroable>(
    shards: &[Shard],
    entries: &[&Entry],
) -> Result<Vec<T>> {
    let len: usize = entries
        .iter()
        .map(|e| e.info.data_offsets.1 - e.info.data_offsets.0)
        .sum();
    let mut words = vec![T::zeroed(); len / std::mem::size_of::<T>()];
    let mut bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    advise_huge_pages(bytes);
    for entry in entries {
        let shard = &shards[entry.shard];
        let (start, end) = entry.info.data_offsets;
        let (here, rest) = bytes.split_at_mut(end - start);
        read_parallel(shard, shard.data_start + start as u64, here)?;
        bytes = rest;
    }
    Ok(words)
}

/// Bytes per read: large enough to stream, small enough to spread one tensor over every core.
const CHUNK: usize = 8 << 20;

/// Fills `buf` from `shard` at `offset`, in chunks on every core: faulting in fresh pages and
/// copying out of the page cache are each bound by one core, not by the disk or memory.
fn read_parallel(shard: &Shard, offset: u64, buf: &mut [u8]) -> Result<()> {
    use rayon::prelude::*;
    buf.par_chunks_mut(CHUNK)
        .enumerate()
        .try_for_each(|(i, chunk)| read_at(&shard.file, chunk, offset + (i * CHUNK) as u64))
        .map_err(|e| Error::io(&shard.path, e))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Asks for transparent huge pages under a large buffer before it is first touched: reading
/// the weights then faults in 2 MiB at a time instead of 4 KiB, and decoding, which streams
/// every weight once per token, misses the TLB far less.
#[cfg(target_os = "linux")]
fn advise_huge_pages(bytes: &mut [u8]) {
    const PAGE: usize = 4096;
    const HUGE: usize = 2 << 20;
    if bytes.len() < HUGE {
        return;
    }
    let start = bytes.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let len = (start + bytes.len() - aligned) / PAGE * PAGE;
    // SAFETY: advice only, on whole pages inside the buffer; the kernel may ignore it.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: &mut [u8]) {}
