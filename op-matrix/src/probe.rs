//! `op-matrix --probe-metal`: before any case runs on Metal, whether device 0 opens, what it
//! is (name, architecture, GPU families, paravirtual or not), and one f32 matmul large enough
//! for Candle's simdgroup-matrix GEMM, against the same product on the CPU. An entry of the
//! paravirtual expected-failure list cites this evidence.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Kind};
use crate::metal::{self, Facts};
use op_matrix_core::compare::compare;
use op_matrix_core::outcome::Outcome;
use op_matrix_core::replay::{panic_message, to_f64};
use op_matrix_core::tolerance;

/// `(m, k, n)` of the product: rows and columns above 1, so that Candle takes the GEMM
/// kernels rather than its matrix-vector ones, and none a multiple of the tiles.
pub const PRODUCT: (usize, usize, usize) = (40, 72, 56);

/// What the probe found; serialized as `metal-probe.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The backend's name in reports: `metal:0`, or `metal:0 (paravirtual)`.
    pub backend: String,
    pub opened: bool,
    /// `present`, `not compiled ...` or `absent: <why>`.
    pub status: String,
    /// The device's own account of itself, when it opened.
    pub facts: Option<Facts>,
    pub paravirtual: bool,
    /// The matmul against the CPU, when the device opened.
    pub product: Option<Outcome>,
}

/// Opens Metal device 0 and probes it.
pub fn run() -> Probe {
    let backend = Backend::open(Kind::Metal);
    let device = backend.device();
    Probe {
        backend: backend.name.clone(),
        opened: device.is_some(),
        status: backend.status(),
        facts: device.and_then(metal::facts),
        paravirtual: backend.paravirtual,
        product: device.map(product),
    }
}

/// The matmul of [`PRODUCT`] on `device` against the CPU, through the op the model uses.
pub fn product(device: &Device) -> Outcome {
    let check = || -> Result<Outcome, String> {
        let (m, k, n) = PRODUCT;
        let a = values(m, k, 7)?;
        let b = values(k, n, 11)?;
        let want = inference::ops::matmul(&a, &b).map_err(|e| format!("on the CPU: {e}"))?;
        let (a, b) = (
            a.to_device(device).map_err(|e| e.to_string())?,
            b.to_device(device).map_err(|e| e.to_string())?,
        );
        let got = match inference::ops::matmul(&a, &b) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Outcome::Unsupported {
                    error: e.to_string(),
                })
            }
        };
        let tol = tolerance::for_op(inference::ops::OpKind::Matmul, DType::F32);
        Ok(compare(
            &to_f64(&got).map_err(|e| format!("reading the output: {e}"))?,
            &to_f64(&want).map_err(|e| e.to_string())?,
            &tol,
        ))
    };
    match catch_unwind(AssertUnwindSafe(check)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::Unsupported { error },
        Err(payload) => Outcome::Panic {
            message: panic_message(payload.as_ref()),
        },
    }
}

/// A deterministic `rows × cols` f32 matrix on the CPU with values in [-0.5, 0.5).
fn values(rows: usize, cols: usize, step: usize) -> Result<Tensor, String> {
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * step + 3) % 29) as f32 / 29.0 - 0.5)
        .collect();
    Tensor::from_vec(data, (rows, cols), &Device::Cpu).map_err(|e| e.to_string())
}

impl Probe {
    /// The job summary's section: what the device is, or that Metal was not exercised.
    pub fn markdown(&self) -> String {
        let mut out = String::from("## Metal probe\n\n");
        if !self.opened {
            let _ = writeln!(
                out,
                "**Metal device did not open on this runner: Metal not exercised.**\n\n\
                 `{}`: {}",
                self.backend, self.status
            );
            return out;
        }
        if self.paravirtual {
            out.push_str(
                "**Paravirtual device**: a virtual machine's GPU, with fewer GPU families than \
                 real hardware. Its results are reported under their own backend name; the \
                 self-hosted Metal gate proves real hardware.\n\n",
            );
        }
        let _ = writeln!(out, "- backend: `{}`", self.backend);
        if let Some(f) = &self.facts {
            let _ = writeln!(out, "- device: {} ({})", f.name, f.architecture);
            let families = if f.families.is_empty() {
                "none of those queried".to_string()
            } else {
                f.families.join(", ")
            };
            let _ = writeln!(out, "- GPU families: {families}");
            let _ = writeln!(
                out,
                "- simdgroup matrices (Apple7 or Mac2): {}",
                if f.simdgroup_matrix() {
                    "supported"
                } else {
                    "not promised by the families"
                }
            );
            let _ = writeln!(
                out,
                "- threadgroup memory: {} bytes",
                f.max_threadgroup_memory
            );
        }
        if let Some(o) = &self.product {
            let (m, k, n) = PRODUCT;
            let _ = writeln!(
                out,
                "- simdgroup-matrix product, f32 [{m}, {k}] x [{k}, {n}] against the CPU: \
                 **{}**: {}",
                o.label(),
                o.detail()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(paravirtual: bool) -> Probe {
        let name = if paravirtual {
            "Apple Paravirtual device"
        } else {
            "Apple M2"
        };
        Probe {
            backend: if paravirtual {
                metal::paravirtual_name("metal:0")
            } else {
                "metal:0".into()
            },
            opened: true,
            status: "present".into(),
            facts: Some(Facts {
                name: name.into(),
                architecture: "unknown".into(),
                families: vec!["Apple5".into(), "Metal3".into()],
                max_threadgroup_memory: 32768,
            }),
            paravirtual,
            product: Some(Outcome::Unsupported {
                error: "pipeline failed".into(),
            }),
        }
    }

    #[test]
    fn a_device_that_does_not_open_says_metal_was_not_exercised() {
        let probe = Probe {
            backend: "metal:0".into(),
            opened: false,
            status: "absent: no Metal device".into(),
            facts: None,
            paravirtual: false,
            product: None,
        };
        let md = probe.markdown();
        assert!(
            md.contains("Metal device did not open on this runner: Metal not exercised"),
            "{md}"
        );
        assert!(md.contains("absent: no Metal device"), "{md}");
    }

    #[test]
    fn a_paravirtual_device_is_named_with_its_families_and_the_products_result() {
        let md = opened(true).markdown();
        assert!(md.contains("**Paravirtual device**"), "{md}");
        assert!(md.contains("`metal:0 (paravirtual)`"), "{md}");
        assert!(md.contains("Apple Paravirtual device"), "{md}");
        assert!(md.contains("GPU families: Apple5, Metal3"), "{md}");
        assert!(md.contains("not promised by the families"), "{md}");
        assert!(md.contains("**unsupported**: pipeline failed"), "{md}");
    }

    #[test]
    fn real_hardware_is_not_called_paravirtual() {
        let md = opened(false).markdown();
        assert!(!md.contains("aravirtual"), "{md}");
    }

    #[test]
    fn the_product_passes_on_the_cpu() {
        let o = product(&Device::Cpu);
        assert_eq!(o.label(), "pass", "{}", o.detail());
    }

    #[test]
    fn the_probe_round_trips_through_json() {
        let probe = opened(true);
        let json = serde_json::to_string(&probe).unwrap();
        assert_eq!(serde_json::from_str::<Probe>(&json).unwrap(), probe);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["opened"], true, "the workflow reads .opened");
    }
}
