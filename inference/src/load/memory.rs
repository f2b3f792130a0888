//! Whether a checkpoint fits in memory, before a byte of its weights is read: the weights in
//! the dtype they will run in, plus the KV cache at a context, against the memory the device
//! has free (the host's, or a GPU's). A model that cannot fit is refused with the numbers and what would fit; a context
//! that cannot fit whole is shortened to what does.

use std::path::PathBuf;

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::load::config::{LayerKind, TextConfig};
use crate::model::kv_cache::SLIDING_WINDOWS_HELD;

/// Treats this many bytes as free (`8G`, `512M` or plain bytes) instead of what the system
/// reports: room left for other programs, or a smaller machine rehearsed.
pub const AVAILABLE_ENV: &str = "GEMMA3_AVAILABLE_MEMORY";

/// The fewest positions worth running: a prompt and a reply of a few words.
const MIN_CONTEXT: usize = 256;

const GIB: f64 = (1u64 << 30) as f64;

/// What a checkpoint needs in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    /// The weights in the dtype they run in.
    pub weights: u64,
    dtype: DType,
    layers: Vec<LayerKind>,
    window: usize,
    /// Bytes of keys and values per position of one layer.
    per_layer_position: u64,
}

impl Need {
    /// `files` hold the weights as `stored` (when known); they run in `dtype`. Quantized
    /// weights (`stored` unknown) keep their blocks.
    pub fn new(
        cfg: &TextConfig,
        files: &[PathBuf],
        stored: Option<DType>,
        dtype: DType,
    ) -> Result<Self> {
        let mut on_disk = 0u64;
        for file in files {
            on_disk += std::fs::metadata(file)
                .map_err(|e| Error::io(file, e))?
                .len();
        }
        let weights = match stored {
            Some(s) => on_disk / s.size_in_bytes() as u64 * dtype.size_in_bytes() as u64,
            None => on_disk,
        };
        let per_layer_position =
            2 * (cfg.num_key_value_heads * cfg.head_dim * dtype.size_in_bytes()) as u64;
        Ok(Self {
            weights,
            dtype,
            layers: cfg.layer_kinds.clone(),
            window: cfg.sliding_window,
            per_layer_position,
        })
    }

    /// The KV cache at `positions`: sliding layers hold at most a few windows.
    pub fn kv_cache(&self, positions: usize) -> u64 {
        let kept = |kind: &LayerKind| match kind {
            LayerKind::Sliding => positions.min(SLIDING_WINDOWS_HELD * self.window),
            LayerKind::Full => positions,
        };
        self.layers
            .iter()
            .map(|kind| kept(kind) as u64 * self.per_layer_position)
            .sum()
    }

    /// The context to run with, at most `context`, given `free` bytes: `context` itself when
    /// the weights and its KV cache fit; else, when `chosen` (the user asked for `context`), an
    /// error naming the context that fits; else that context. An error when not even the
    /// weights with a short context fit.
    pub fn fit(&self, context: usize, free: u64, chosen: bool) -> Result<usize> {
        let total = |positions: usize| self.weights + self.kv_cache(positions);
        if total(context) <= free {
            return Ok(context);
        }
        let least = MIN_CONTEXT.min(context);
        if total(least) > free {
            return Err(Error::Invalid(format!(
                "the model needs about {} of memory for its weights in {} and {} for a KV cache of \
                 {least} positions, but {} is free{}",
                gib(self.weights),
                self.dtype.as_str(),
                gib(self.kv_cache(least)),
                gib(free),
                self.smaller_hint(free),
            )));
        }
        // The largest context that fits: the KV cache only grows with it.
        let (mut lo, mut hi) = (least, context);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if total(mid) <= free {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if chosen {
            return Err(Error::Invalid(format!(
                "a context of {context} positions needs about {} of memory ({} of weights in {}, \
                 {} of KV cache) but {} is free; --ctx-size {lo} fits",
                gib(total(context)),
                gib(self.weights),
                self.dtype.as_str(),
                gib(self.kv_cache(context)),
                gib(free),
            )));
        }
        Ok(lo)
    }

    fn smaller_hint(&self, free: u64) -> String {
        let half = self.weights / 2 + self.kv_cache(MIN_CONTEXT) / 2;
        if self.dtype == DType::F32 && half <= free {
            format!("; --dtype bf16 needs about {}", gib(half))
        } else {
            "; a smaller model, or a quantized GGUF file of it, would fit".to_string()
        }
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB)
}

/// The bytes free for the model on `device`: [`AVAILABLE_ENV`] when set; else the kernel's
/// `MemAvailable` for the CPU, the driver's free memory for a CUDA device, and what Metal
/// recommends less what it holds for an Apple GPU; none where it is unknown (the check is
/// then skipped).
pub fn free_on(device: &Device) -> Result<Option<u64>> {
    if let Ok(value) = std::env::var(AVAILABLE_ENV) {
        return parse_size(&value).map(Some).ok_or_else(|| {
            Error::Invalid(format!(
                "{AVAILABLE_ENV}={value}: expected bytes, or a number with K, M, G or T"
            ))
        });
    }
    match device {
        Device::Cpu => Ok(host_free()),
        #[cfg(any(feature = "cuda", feature = "cuda-core-only"))]
        Device::Cuda(cuda) => {
            let (free, _total) =
                cuda.cuda_stream().context().mem_get_info().map_err(|e| {
                    Error::Invalid(format!("asking the GPU for its free memory: {e}"))
                })?;
            Ok(Some(free as u64))
        }
        #[cfg(feature = "metal")]
        Device::Metal(metal) => {
            let gpu = metal.device();
            let held = gpu.current_allocated_size();
            Ok(Some(
                gpu.recommended_max_working_set_size().saturating_sub(held) as u64,
            ))
        }
        #[allow(unreachable_patterns)]
        _ => Ok(None),
    }
}

fn host_free() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 10),
        'M' => (&s[..s.len() - 1], 20),
        'G' => (&s[..s.len() - 1], 30),
        'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()?
        .checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(weights: u64, layers: Vec<LayerKind>) -> Need {
        Need {
            weights,
            dtype: DType::F32,
            layers,
            window: 512,
            per_layer_position: 1000,
        }
    }

    #[test]
    fn sliding_layers_keep_a_few_windows_only() {
        let n = need(0, vec![LayerKind::Sliding, LayerKind::Full]);
        assert_eq!(n.kv_cache(100), 200 * 1000);
        assert_eq!(n.kv_cache(10_000), (3 * 512 + 10_000) * 1000);
    }

    #[test]
    fn a_context_that_cannot_fit_is_shortened_or_refused_with_what_fits() {
        let n = need(1_000_000, vec![LayerKind::Full]);
        assert_eq!(n.fit(4096, u64::MAX, false).unwrap(), 4096);
        // 1 MB of weights and 1 kB a position in 3 MB: 2000 positions.
        assert_eq!(n.fit(4096, 3_000_000, false).unwrap(), 2000);
        let err = n.fit(4096, 3_000_000, true).unwrap_err().to_string();
        assert!(err.contains("--ctx-size 2000 fits"), "{err}");
        let err = n.fit(4096, 1_000_000, false).unwrap_err().to_string();
        assert!(err.contains("--dtype bf16"), "{err}");
        let err = n.fit(4096, 100, false).unwrap_err().to_string();
        assert!(err.contains("quantized GGUF"), "{err}");
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }
}
