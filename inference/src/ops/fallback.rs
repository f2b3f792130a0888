//! Hybrid execution: ops that a device lacks run on the host, every other op stays put.
//!
//! The preflight knows, before any weight is loaded, which ops a device cannot run. Rather
//! than refuse the device, a caller may [`install`] a [`Plan`] naming those ops: each call of
//! one of them moves its inputs to the host, runs there and moves the output back. This is
//! PyTorch's `PYTORCH_ENABLE_MPS_FALLBACK`, made explicit: the set is known and reported.
//!
//! [`refuse`] makes this thread's device reject an op, so that the whole path can be tested on
//! a machine whose only device is the CPU.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use super::{Op, OpKind};
use crate::device::Backend;
use crate::error::{Error, Result};

/// Which ops run on the host, and what they cost so far.
#[derive(Debug)]
pub struct Plan {
    ops: BTreeSet<OpKind>,
    host: Device,
    usage: RefCell<Usage>,
}

/// Calls routed to the host and their wall time, transfers included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub calls: usize,
    pub time: Duration,
}

impl Plan {
    /// Routes `ops` to the CPU.
    pub fn to_cpu(ops: impl IntoIterator<Item = OpKind>) -> Self {
        Self {
            ops: ops.into_iter().collect(),
            host: Device::Cpu,
            usage: RefCell::default(),
        }
    }

    pub fn ops(&self) -> impl Iterator<Item = OpKind> + '_ {
        self.ops.iter().copied()
    }

    pub fn usage(&self) -> Usage {
        *self.usage.borrow()
    }

    fn routes(&self, op: &Op) -> bool {
        self.ops.contains(&op.kind())
    }

    /// Runs `op` on the host. Reading the output back to the device waits for the device's
    /// queue, so the time includes the transfers.
    fn run(&self, op: &Op, xs: &[&Tensor]) -> Result<Tensor> {
        let start = Instant::now();
        let device = xs[0].device().clone();
        let host: Vec<Tensor> = xs
            .iter()
            .map(|x| x.to_device(&self.host))
            .collect::<candle_core::Result<_>>()?;
        let refs: Vec<&Tensor> = host.iter().collect();
        let out = op.apply(&refs)?.to_device(&device)?;
        let mut usage = self.usage.borrow_mut();
        usage.calls += 1;
        usage.time += start.elapsed();
        Ok(out)
    }
}

thread_local! {
    static PLAN: RefCell<Option<Rc<Plan>>> = const { RefCell::new(None) };
    static REFUSED: RefCell<BTreeSet<OpKind>> = const { RefCell::new(BTreeSet::new()) };
}

/// Keeps a plan installed on this thread until dropped.
pub struct Installed {
    previous: Option<Rc<Plan>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        PLAN.with(|p| *p.borrow_mut() = self.previous.take());
    }
}

/// Routes this thread's calls of the plan's ops to the host until the guard is dropped.
pub fn install(plan: Rc<Plan>) -> Installed {
    let previous = PLAN.with(|p| p.borrow_mut().replace(plan));
    Installed { previous }
}

/// Makes this thread's device reject `op` with the error a missing kernel gives, as if the
/// backend lacked it. The host path of a [`Plan`] is not affected. For tests and drills.
pub fn refuse(op: OpKind) {
    REFUSED.with(|r| r.borrow_mut().insert(op));
}

/// Whether this thread has a plan installed or refuses an op.
pub(super) fn is_active() -> bool {
    PLAN.with(|p| p.borrow().is_some()) || REFUSED.with(|r| !r.borrow().is_empty())
}

/// Whether `op` does not simply run on its inputs' device here: the installed plan routes it
/// to the host, or the device refuses it.
pub(super) fn diverts(op: &Op) -> bool {
    PLAN.with(|p| p.borrow().as_ref().is_some_and(|plan| plan.routes(op)))
        || REFUSED.with(|r| r.borrow().contains(&op.kind()))
}

/// Runs `op` where it belongs: on the host when the installed plan routes it, else on its
/// inputs' device.
pub(super) fn dispatch(op: &Op, xs: &[&Tensor]) -> Result<Tensor> {
    if let Some(plan) = PLAN.with(|p| p.borrow().clone()) {
        if plan.routes(op) {
            return plan.run(op, xs);
        }
    }
    if REFUSED.with(|r| r.borrow().contains(&op.kind())) {
        return Err(Error::Invalid(format!(
            "no {} implementation for {} (refused on purpose, to test the fallback)",
            Backend::of(xs[0].device()),
            op.name()
        )));
    }
    op.apply(xs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops;

    fn input() -> Tensor {
        Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((2, 4))
            .unwrap()
    }

    #[test]
    fn a_refused_op_fails_and_a_routed_one_runs_on_the_host() {
        std::thread::spawn(|| {
            let x = input();
            let expected = ops::softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
            refuse(OpKind::SoftmaxLastDim);
            let err = ops::softmax_last_dim(&x).unwrap_err().to_string();
            assert!(
                err.contains("no cpu implementation for softmax_last_dim"),
                "{err}"
            );

            let plan = Rc::new(Plan::to_cpu([OpKind::SoftmaxLastDim]));
            let guard = install(plan.clone());
            let got = ops::softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(got, expected);
            ops::tanh(&x).unwrap();
            assert_eq!(plan.usage().calls, 1, "only the routed op goes to the host");

            drop(guard);
            assert!(
                ops::softmax_last_dim(&x).is_err(),
                "the plan ends with its guard"
            );
        })
        .join()
        .unwrap();
    }
}
