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
use inference::ops::OpKind;

use crate::error::Result;
use crate::golden::Source;
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

/// Replays every embedded case of `dtype` on `device`. `backend` names it in messages (`cuda`);
/// `inject` makes that op report unsupported, to test the callers' failure paths.
pub fn run(
    device: &Device,
    backend: Backend,
    dtype: DType,
    inject: Option<OpKind>,
) -> Result<Preflight> {
    let start = Instant::now();
    let cases = Source::Embedded.cases(&[dtype])?;
    let mut failures = BTreeMap::new();
    for case in &cases {
        let outcome = replay(case, device, backend, inject);
        if outcome.is_failure() {
            let why = match &outcome {
                Outcome::Unsupported { error } => error.clone(),
                other => other.detail(),
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
/// every embedded case of `dtype` on `device` under the plan, transfers included.
pub fn host_share(device: &Device, dtype: DType, plan: &Rc<Plan>) -> Result<f64> {
    let _installed = fallback::install(plan.clone());
    let routed: HashSet<OpKind> = plan.ops().collect();
    let (mut host, mut total) = (Duration::ZERO, Duration::ZERO);
    for case in Source::Embedded.cases(&[dtype])? {
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
            let p = run(&Device::Cpu, Backend::Cpu, dtype, None).unwrap();
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
        assert_eq!(host_share(&Device::Cpu, DType::F32, &none).unwrap(), 0.0);
        let rope = Rc::new(Plan::to_cpu([OpKind::Rope]));
        let share = host_share(&Device::Cpu, DType::F32, &rope).unwrap();
        assert!(share > 0.0 && share < 1.0, "{share}");
        assert!(rope.usage().calls > 0);
    }
}
