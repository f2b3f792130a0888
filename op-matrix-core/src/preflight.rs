//! Preflight: before an application loads gigabytes of weights onto a device, replay the
//! model's op inventory for that (device, dtype) from the embedded goldens. It takes
//! milliseconds and turns a run-time `no metal implementation for rotary-emb` into a one-line
//! reason, with the fix, before anything is loaded.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use inference::device::Backend;
use inference::ops::fallback::{self, Plan};
use inference::ops::quant::QuantType;
use inference::ops::OpKind;

use crate::error::Result;
use crate::golden::{Source, StoredCase};
use crate::layout;
use crate::outcome::Outcome;
use crate::replay::replay;

/// The result of one preflight.
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    pub executed: usize,
    /// Failing op names with the first failure's text, e.g. `rope` → `no metal implementation
    /// for rotary-emb`.
    pub failures: BTreeMap<OpKind, String>,
    pub elapsed: Duration,
}

impl Preflight {
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.executed > 0
    }

    /// One line naming the failing ops, for logs and fallbacks.
    pub fn summary(&self) -> String {
        let ops: Vec<String> = self
            .failures
            .iter()
            .map(|(op, why)| format!("{op} ({why})"))
            .collect();
        format!(
            "{} of the model's ops fail: {}",
            self.failures.len(),
            ops.join("; ")
        )
    }

    /// What to do about the failures, when they are the known build-configuration class.
    pub fn fix(&self, backend: Backend) -> Option<String> {
        if backend == Backend::Cpu {
            return None;
        }
        let missing = self
            .failures
            .values()
            .any(|why| why.contains(&format!("no {backend} implementation")));
        missing.then(|| {
            format!(
                "candle-nn was built without `{backend}`: enable candle-nn/{backend} alongside \
                 candle-core/{backend} (in this workspace, build with `--features {backend}`; \
                 `cargo xtask audit` checks any workspace)"
            )
        })
    }
}

/// The embedded cases of `dtype` that a model whose quantized weights are in the formats
/// `quants` launches: every unquantized case, and the quantized ones of those formats.
fn model_cases(dtype: DType, quants: &[QuantType]) -> Result<Vec<StoredCase>> {
    let mut cases = Source::Embedded.cases(&[dtype])?;
    cases.retain(|c| c.meta.op.quant().is_none_or(|q| quants.contains(&q)));
    Ok(cases)
}

/// Replays the embedded cases of `dtype` on `device`, with those of the block formats
/// `quants` (a GGUF checkpoint's). `backend` names it in messages (`cuda`); `inject` makes
/// that op report unsupported, to test the callers' failure paths.
pub fn run(
    device: &Device,
    backend: Backend,
    dtype: DType,
    quants: &[QuantType],
    inject: Option<OpKind>,
) -> Result<Preflight> {
    let start = Instant::now();
    let cases = model_cases(dtype, quants)?;
    let mut failures = BTreeMap::new();
    for case in &cases {
        let outcome = replay(case, device, backend, inject);
        if outcome.is_failure() {
            let why = match &outcome {
                Outcome::Unsupported { error } => error.clone(),
                other => other.detail(),
            };
            // A quantized op fails per format: say which.
            let why = match case.meta.op.quant() {
                Some(q) => format!("{}: {why}", q.name()),
                None => why,
            };
            failures.entry(case.meta.op.kind()).or_insert(why);
        }
    }
    Ok(Preflight {
        executed: cases.len(),
        failures,
        elapsed: start.elapsed(),
    })
}

/// The share of the op time that the ops `plan` routes to the host take, measured by running
/// the embedded cases of `dtype` and `quants` (as [`run`] takes them) on `device` under the
/// plan, transfers included.
pub fn host_share(
    device: &Device,
    dtype: DType,
    quants: &[QuantType],
    plan: &Rc<Plan>,
) -> Result<f64> {
    let _installed = fallback::install(plan.clone());
    let routed: HashSet<OpKind> = plan.ops().collect();
    let (mut host, mut total) = (Duration::ZERO, Duration::ZERO);
    for case in model_cases(dtype, quants)? {
        let inputs = case
            .inputs
            .iter()
            .map(|(base, strided)| layout::rebuild(base, strided, device))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = inputs.iter().collect();
        device.synchronize()?;
        let start = Instant::now();
        case.meta.op.call(&refs)?;
        device.synchronize()?;
        let took = start.elapsed();
        total += took;
        if routed.contains(&case.meta.op.kind()) {
            host += took;
        }
    }
    Ok(host.as_secs_f64() / total.as_secs_f64().max(f64::MIN_POSITIVE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_passes_in_every_dtype() {
        for dtype in inference::ops::DTYPES {
            let p = run(&Device::Cpu, Backend::Cpu, dtype, &QuantType::ALL, None).unwrap();
            assert!(p.passed(), "{dtype:?}: {}", p.summary());
            assert!(p.executed > 50, "{dtype:?}: {} cases", p.executed);
        }
    }

    #[test]
    fn a_missing_kernel_is_named_with_the_build_fix() {
        let p = run(
            &Device::Cpu,
            Backend::Metal,
            DType::BF16,
            &[],
            Some(OpKind::Rope),
        )
        .unwrap();
        assert!(!p.passed());
        assert_eq!(p.failures.keys().collect::<Vec<_>>(), [&OpKind::Rope]);
        assert!(
            p.summary().contains("no metal implementation for rope"),
            "{}",
            p.summary()
        );
        let fix = p
            .fix(Backend::Metal)
            .expect("the build-configuration class has a fix");
        assert!(fix.contains("candle-nn/metal"), "{fix}");
        assert_eq!(p.fix(Backend::Cpu), None);
    }

    #[test]
    fn the_host_share_counts_only_routed_ops() {
        let none = Rc::new(Plan::to_cpu([]));
        assert_eq!(
            host_share(&Device::Cpu, DType::F32, &[], &none).unwrap(),
            0.0
        );
        let rope = Rc::new(Plan::to_cpu([OpKind::Rope]));
        let share = host_share(&Device::Cpu, DType::F32, &[], &rope).unwrap();
        assert!(share > 0.0 && share < 1.0, "{share}");
        assert!(rope.usage().calls > 0);
    }

    #[test]
    fn a_checkpoint_replays_the_block_formats_it_holds_and_no_other() {
        let dense = run(&Device::Cpu, Backend::Cpu, DType::F32, &[], None).unwrap();
        let q4k = run(
            &Device::Cpu,
            Backend::Cpu,
            DType::F32,
            &[QuantType::Q4K],
            None,
        )
        .unwrap();
        let every = run(
            &Device::Cpu,
            Backend::Cpu,
            DType::F32,
            &QuantType::ALL,
            None,
        )
        .unwrap();
        assert!(dense.executed < q4k.executed && q4k.executed < every.executed);
        let cases = model_cases(DType::F32, &[QuantType::Q4K]).unwrap();
        let formats: std::collections::BTreeSet<QuantType> =
            cases.iter().filter_map(|c| c.meta.op.quant()).collect();
        assert_eq!(formats, [QuantType::Q4K].into());
        let kinds: std::collections::BTreeSet<OpKind> = cases
            .iter()
            .filter(|c| c.meta.op.quant().is_some())
            .map(|c| c.meta.op.kind())
            .collect();
        assert_eq!(kinds, [OpKind::QLinear, OpKind::QEmbed].into());

        let refused = run(
            &Device::Cpu,
            Backend::Metal,
            DType::F32,
            &[QuantType::Q6K],
            Some(OpKind::QLinear),
        )
        .unwrap();
        assert_eq!(
            refused.failures.keys().collect::<Vec<_>>(),
            [&OpKind::QLinear]
        );
        assert!(
            refused.summary().contains("qlinear (q6_k: "),
            "{}",
            refused.summary()
        );
    }
}
