//! Which instruction set this crate's own CPU kernels use: the best one the CPU has, or the one
//! that `GEMMA3_CPU_KERNELS` (or [`force`]) names, so that tests, benchmarks and a user chasing
//! a wrong number can run every path a machine has.
//!
//! The choice is process-wide and read on every kernel call (one relaxed atomic load), so a
//! test can switch paths between runs of the model.

use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};

/// The environment variable that forces a path.
pub const ENV: &str = "GEMMA3_CPU_KERNELS";

/// A family of CPU kernels, each compiled for one instruction set and chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelPath {
    /// Plain Rust that the compiler vectorizes for the build's baseline: any CPU.
    Portable,
    /// x86-64-v3: AVX2 and FMA, 8 f32 lanes; bf16 is widened to f32 in registers.
    Avx2,
    /// AVX-512 F/BW/VL with BF16: 16 f32 lanes, bf16 pairs multiplied by `vdpbf16ps`.
    Avx512,
    /// aarch64 Advanced SIMD with the bf16 extension (FEAT_BF16: Apple M2 and later, Neoverse
    /// V1 and N2): [`Neon`](Self::Neon) with bf16 pairs multiplied by `bfdot`.
    #[serde(rename = "neon-bf16")]
    NeonBf16,
    /// aarch64 Advanced SIMD: 4 f32 lanes, 32 registers; bf16 is widened to f32 in registers.
    Neon,
}

impl KernelPath {
    /// Every path, best first.
    pub const ALL: [KernelPath; 5] = [
        Self::Avx512,
        Self::Avx2,
        Self::NeonBf16,
        Self::Neon,
        Self::Portable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
            Self::NeonBf16 => "neon-bf16",
            Self::Neon => "neon",
        }
    }

    /// The CPU features the path needs, as `/proc/cpuinfo` and Rust name them.
    pub fn requires(self) -> &'static str {
        match self {
            Self::Portable => "nothing",
            Self::Avx2 => "x86-64 with avx2 and fma",
            Self::Avx512 => "x86-64 with avx512f, avx512bw, avx512vl and avx512_bf16",
            Self::NeonBf16 => "aarch64 with neon and bf16",
            Self::Neon => "aarch64 (neon)",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(target_arch = "aarch64")]
            Self::NeonBf16 => {
                std::arch::is_aarch64_feature_detected!("neon")
                    && std::arch::is_aarch64_feature_detected!("bf16")
            }
            #[cfg(target_arch = "aarch64")]
            Self::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The paths this CPU can run, best first.
    pub fn supported() -> Vec<KernelPath> {
        Self::ALL.into_iter().filter(|p| p.is_supported()).collect()
    }

    /// The best path this CPU can run.
    pub fn best() -> KernelPath {
        Self::ALL
            .into_iter()
            .find(|p| p.is_supported())
            .unwrap_or(Self::Portable)
    }

    fn code(self) -> u8 {
        Self::ALL.iter().position(|&p| p == self).unwrap_or(0) as u8
    }
}

crate::named!(KernelPath, "CPU kernel path");

const UNSET: u8 = u8::MAX;
static ACTIVE: AtomicU8 = AtomicU8::new(UNSET);

/// The path the kernels take now: the forced one, else `GEMMA3_CPU_KERNELS`, else the best.
pub fn active() -> KernelPath {
    let code = ACTIVE.load(Ordering::Relaxed);
    if let Some(&path) = KernelPath::ALL.get(usize::from(code)) {
        return path;
    }
    let path = match from_env() {
        Ok(forced) => forced.unwrap_or_else(KernelPath::best),
        Err(e) => {
            tracing::warn!("{e}; using {}", KernelPath::best());
            KernelPath::best()
        }
    };
    ACTIVE.store(path.code(), Ordering::Relaxed);
    path
}

/// The path `GEMMA3_CPU_KERNELS` names, if set; an error if it names no path or one this CPU
/// cannot run. Binaries call this at start so that a bad value stops them with a clear message.
pub fn from_env() -> Result<Option<KernelPath>> {
    let Ok(value) = std::env::var(ENV) else {
        return Ok(None);
    };
    if value.trim().is_empty() {
        return Ok(None);
    }
    let path: KernelPath = value
        .parse()
        .map_err(|e: Error| Error::Invalid(format!("{ENV}={value}: {e}")))?;
    check(path).map_err(|e| Error::Invalid(format!("{ENV}={value}: {e}")))?;
    Ok(Some(path))
}

/// Makes every later kernel call take `path`; an error if this CPU cannot run it.
pub fn force(path: KernelPath) -> Result<()> {
    check(path)?;
    ACTIVE.store(path.code(), Ordering::Relaxed);
    Ok(())
}

fn check(path: KernelPath) -> Result<()> {
    if path.is_supported() {
        return Ok(());
    }
    let here: Vec<&str> = KernelPath::supported().iter().map(|p| p.name()).collect();
    Err(Error::Invalid(format!(
        "the `{path}` kernels need {}, which this CPU lacks; it can run {}",
        path.requires(),
        here.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portable_path_runs_everywhere_and_is_never_the_best_on_common_targets() {
        assert!(KernelPath::Portable.is_supported());
        let supported = KernelPath::supported();
        assert_eq!(supported.last(), Some(&KernelPath::Portable));
        assert_eq!(supported[0], KernelPath::best());
        if cfg!(target_arch = "aarch64") {
            assert!(matches!(
                KernelPath::best(),
                KernelPath::Neon | KernelPath::NeonBf16
            ));
        }
    }

    #[test]
    fn a_path_the_cpu_lacks_is_refused_with_what_it_needs() {
        let missing = KernelPath::ALL.into_iter().find(|p| !p.is_supported());
        let missing = missing.expect("no CPU has both x86 and aarch64 paths");
        let err = check(missing).unwrap_err().to_string();
        assert!(err.contains(missing.requires()), "{err}");
        assert!(err.contains("portable"), "{err}");
    }
}
