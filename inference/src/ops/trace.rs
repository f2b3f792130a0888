//! Recording of op calls. Inactive unless [`capture`] is running on this thread.

use std::cell::RefCell;

use candle_core::Tensor;

use super::Op;

/// One recorded op call: the op, its real inputs and its output.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: Op,
    pub inputs: Vec<Tensor>,
    pub output: Tensor,
}

thread_local! {
    static ACTIVE: RefCell<Option<Vec<Call>>> = const { RefCell::new(None) };
}

/// Runs `f` with recording on, and returns its result with every op call it made, in order.
/// Nested captures are not supported: the inner capture takes the calls it sees.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Call>) {
    let outer = ACTIVE.with(|a| a.borrow_mut().replace(Vec::new()));
    let result = f();
    let calls = ACTIVE.with(|a| std::mem::replace(&mut *a.borrow_mut(), outer));
    (result, calls.unwrap_or_default())
}

pub(super) fn record(op: &Op, inputs: &[&Tensor], output: &Tensor) {
    ACTIVE.with(|a| {
        if let Some(calls) = a.borrow_mut().as_mut() {
            calls.push(Call {
                op: op.clone(),
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                output: output.clone(),
            });
        }
    });
}
