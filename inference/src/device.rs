//! Device and dtype selection from user-facing names.

use std::str::FromStr;

use candle_core::{DType, Device};

use crate::error::{Error, Result};

/// A kind of device: what features compile in and what reports and xfail lists are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    Cpu,
    Cuda,
    Metal,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Cpu, Backend::Cuda, Backend::Metal];

    /// `cpu`, `cuda` or `metal`: the backend's name everywhere, and its cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
            Backend::Metal => "metal",
        }
    }

    /// The backend of an open device.
    pub fn of(device: &Device) -> Self {
        match device {
            Device::Cpu => Backend::Cpu,
            Device::Cuda(_) => Backend::Cuda,
            Device::Metal(_) => Backend::Metal,
        }
    }

    /// Whether this binary carries the backend, as Candle reports its own build features.
    pub fn compiled(self) -> bool {
        match self {
            Backend::Cpu => true,
            Backend::Cuda => candle_core::utils::cuda_is_available(),
            Backend::Metal => candle_core::utils::metal_is_available(),
        }
    }
}

gemma3_interface::named!(Backend, "backend");

/// A backend request: `auto`, `cpu`, `cuda[:N]` or `metal[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
    Metal(usize),
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, ordinal) = match s.split_once(':') {
            Some((n, i)) => {
                let i = i.parse().map_err(|_| {
                    Error::Invalid(format!("device `{s}`: `{i}` is not a device number"))
                })?;
                (n, Some(i))
            }
            None => (s, None),
        };
        match (name, ordinal) {
            ("auto", None) => Ok(Self::Auto),
            ("cpu", None) => Ok(Self::Cpu),
            ("cuda", i) => Ok(Self::Cuda(i.unwrap_or(0))),
            ("metal", i) => Ok(Self::Metal(i.unwrap_or(0))),
            _ => Err(Error::Invalid(format!(
                "unknown device `{s}`; use auto, cpu, cuda, cuda:N, metal or metal:N"
            ))),
        }
    }
}

/// Device 0 of the backend.
impl From<Backend> for DeviceChoice {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Cpu => Self::Cpu,
            Backend::Cuda => Self::Cuda(0),
            Backend::Metal => Self::Metal(0),
        }
    }
}

impl DeviceChoice {
    /// Opens the device. `Auto` takes the first of CUDA, Metal and CPU that opens.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(i) => open_cuda(i).map_err(|e| unavailable("cuda", i, "cuda", e)),
            Self::Metal(i) => Device::new_metal(i).map_err(|e| unavailable("metal", i, "metal", e)),
            Self::Auto => Ok(Self::Cuda(0)
                .open()
                .or_else(|_| Self::Metal(0).open())
                .unwrap_or(Device::Cpu)),
        }
    }
}

/// CUDA device `ordinal`, on Candle's one stream, without cudarc's per-buffer events.
///
/// cudarc creates two CUDA events for every buffer it allocates and destroys them when it is
/// freed, to order buffers shared between streams. Everything here runs on a single stream, so
/// they only cost host time: several microseconds of every op of a decode step.
pub fn open_cuda(ordinal: usize) -> candle_core::Result<Device> {
    let device = Device::new_cuda(ordinal)?;
    #[cfg(any(feature = "cuda", feature = "cuda-core-only"))]
    // SAFETY: the device's tensors are all made and used on the device's one stream; no other
    // stream is ever created, so no buffer needs cross-stream ordering.
    unsafe {
        device.as_cuda_device()?.disable_event_tracking();
    }
    Ok(device)
}

fn unavailable(name: &str, i: usize, feature: &str, e: candle_core::Error) -> Error {
    let compiled = match name {
        "cuda" => cfg!(feature = "cuda"),
        _ => cfg!(feature = "metal"),
    };
    if compiled {
        Error::Invalid(format!("cannot open {name}:{i}: {e}"))
    } else {
        Error::Invalid(format!(
            "this binary was built without {name}; rebuild with `--features {feature}` (it enables {name} on candle-core and candle-nn together)"
        ))
    }
}

/// A dtype request: `auto` or a float dtype name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeChoice {
    Auto,
    Exact(DType),
}

impl FromStr for DTypeChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::Exact(DType::F32)),
            "bf16" => Ok(Self::Exact(DType::BF16)),
            "f16" => Ok(Self::Exact(DType::F16)),
            _ => Err(Error::Invalid(format!(
                "unknown dtype `{s}`; use auto, f32, bf16 or f16"
            ))),
        }
    }
}

impl DTypeChoice {
    /// `Auto` is bf16 on accelerators. On the CPU it is the checkpoint's own dtype (`stored`)
    /// where that is bf16, which every CPU kernel path runs at half f32's bytes; otherwise
    /// f32: f16 overflows in Gemma 3, and quantized weights take f32 activations.
    pub fn resolve(self, device: &Device, stored: Option<DType>) -> DType {
        match self {
            Self::Exact(d) => d,
            Self::Auto if !device.is_cpu() => DType::BF16,
            Self::Auto if stored == Some(DType::BF16) => DType::BF16,
            Self::Auto => DType::F32,
        }
    }
}

/// A human name for the device: the CPU model, the GPU's name, or the Metal GPU family.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => cpu_name(),
        #[cfg(any(feature = "cuda", feature = "cuda-core-only"))]
        Device::Cuda(d) => d
            .cuda_stream()
            .context()
            .name()
            .unwrap_or_else(|e| format!("CUDA device (name unavailable: {e})")),
        #[cfg(feature = "metal")]
        Device::Metal(d) => format!("Apple GPU ({})", d.device().architecture_name()),
        #[allow(unreachable_patterns)]
        _ => "unknown device".to_string(),
    }
}

fn cpu_name() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model}, {threads} threads")
}
