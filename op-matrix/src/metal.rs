//! What a Metal device says about itself: its name, its architecture and the GPU families it
//! supports. GitHub's arm64 macOS virtual machines expose an "Apple Paravirtual device", which
//! runs Metal with fewer families than real hardware; results on it must say so.

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// The suffix a paravirtual device's backend name carries in every report.
pub const PARAVIRTUAL: &str = "paravirtual";

/// The families MLX's GEMM needs for simdgroup matrices (`simdgroup_float8x8`).
const SIMDGROUP_MATRIX_FAMILIES: [&str; 2] = ["Apple7", "Mac2"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// `MTLDevice.name`, e.g. `Apple M2 Pro` or `Apple Paravirtual device`.
    pub name: String,
    /// The architecture name (`applegpu_g14s`), `unknown` where the device reports none.
    pub architecture: String,
    /// The supported families among those queried, e.g. `Apple7`, `Mac2`, `Metal3`.
    pub families: Vec<String>,
    /// Bytes of threadgroup memory per threadgroup; the GEMM tiles live there.
    pub max_threadgroup_memory: u64,
}

impl Facts {
    pub fn paravirtual(&self) -> bool {
        is_paravirtual(&self.name)
    }

    /// Whether the families promise the simdgroup matrices Candle's Metal GEMM is built on.
    pub fn simdgroup_matrix(&self) -> bool {
        self.families
            .iter()
            .any(|f| SIMDGROUP_MATRIX_FAMILIES.contains(&f.as_str()))
    }
}

/// A virtual machine's GPU rather than real hardware, judged by the device's name.
pub fn is_paravirtual(name: &str) -> bool {
    name.to_ascii_lowercase().contains(PARAVIRTUAL)
}

/// The backend name a paravirtual device reports under, e.g. `metal:0 (paravirtual)`: a
/// column of its own in every table and merge, never standing in for real hardware.
pub fn paravirtual_name(name: &str) -> String {
    format!("{name} ({PARAVIRTUAL})")
}

/// The facts of a Metal device; `None` for any other device or a build without `metal`.
pub fn facts(device: &Device) -> Option<Facts> {
    match device {
        #[cfg(feature = "metal")]
        Device::Metal(d) => Some(query::facts(d)),
        _ => None,
    }
}

#[cfg(feature = "metal")]
mod query {
    use candle_core::MetalDevice;
    use objc2_metal::{MTLDevice, MTLGPUFamily};

    use super::Facts;

    const FAMILIES: [(&str, MTLGPUFamily); 14] = [
        ("Apple1", MTLGPUFamily::Apple1),
        ("Apple2", MTLGPUFamily::Apple2),
        ("Apple3", MTLGPUFamily::Apple3),
        ("Apple4", MTLGPUFamily::Apple4),
        ("Apple5", MTLGPUFamily::Apple5),
        ("Apple6", MTLGPUFamily::Apple6),
        ("Apple7", MTLGPUFamily::Apple7),
        ("Apple8", MTLGPUFamily::Apple8),
        ("Apple9", MTLGPUFamily::Apple9),
        ("Apple10", MTLGPUFamily::Apple10),
        ("Mac2", MTLGPUFamily::Mac2),
        ("Common3", MTLGPUFamily::Common3),
        ("Metal3", MTLGPUFamily::Metal3),
        ("Metal4", MTLGPUFamily::Metal4),
    ];

    pub fn facts(device: &MetalDevice) -> Facts {
        let metal = device.device();
        let raw = metal.as_ref();
        Facts {
            name: raw.name().to_string(),
            architecture: metal.architecture_name(),
            families: FAMILIES
                .iter()
                .filter(|(_, family)| raw.supportsFamily(*family))
                .map(|(name, _)| name.to_string())
                .collect(),
            max_threadgroup_memory: raw.maxThreadgroupMemoryLength() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, families: &[&str]) -> Facts {
        Facts {
            name: name.into(),
            architecture: "unknown".into(),
            families: families.iter().map(|f| f.to_string()).collect(),
            max_threadgroup_memory: 32768,
        }
    }

    #[test]
    fn the_hosted_runners_device_is_paravirtual_and_real_chips_are_not() {
        assert!(is_paravirtual("Apple Paravirtual device"));
        assert!(is_paravirtual("apple paravirtual device"));
        assert!(!is_paravirtual("Apple M2 Pro"));
        assert!(!is_paravirtual("Apple M1"));
    }

    #[test]
    fn a_paravirtual_backend_is_named_apart() {
        assert_eq!(paravirtual_name("metal:0"), "metal:0 (paravirtual)");
    }

    #[test]
    fn simdgroup_matrices_need_apple7_or_mac2() {
        assert!(facts("Apple M1", &["Apple7", "Mac2", "Metal3"]).simdgroup_matrix());
        assert!(facts("x", &["Mac2"]).simdgroup_matrix());
        assert!(!facts("Apple Paravirtual device", &["Apple5", "Metal3"]).simdgroup_matrix());
    }

    #[test]
    fn the_cpu_has_no_metal_facts() {
        assert_eq!(super::facts(&Device::Cpu), None);
    }
}
