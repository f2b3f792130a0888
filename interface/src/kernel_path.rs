//! The CPU kernel paths: each family of the inference crate's own CPU kernels compiled for one
//! instruction set, and which of them this CPU can run. The inference crate picks one at run
//! time; tools name them (`--cpu-kernels avx2`).

use serde::Serialize;

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

    /// Where the path stands in [`ALL`](Self::ALL): a compact code for an atomic.
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|&p| p == self).unwrap_or(0) as u8
    }
}

crate::named!(KernelPath, "CPU kernel path");

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
}
