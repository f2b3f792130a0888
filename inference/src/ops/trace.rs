//! Recording of op calls. Inactive unless [`capture`] is running on this thread.

use std::cell::RefCell;
use std::collections::HashSet;

use candle_core::Tensor;

use super::Op;

/// One recorded op call: the op, its real inputs and its output.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: Op,
    pub inputs: Vec<Tensor>,
    pub output: Tensor,
}

/// Everything recorded while a capture ran.
#[derive(Debug, Default)]
pub struct Trace {
    /// Op calls, in execution order.
    pub calls: Vec<Call>,
    /// Tensors that entered from the host (see [`super::source`]).
    pub sources: Vec<Tensor>,
}

/// An op input that no recorded call or source produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexplained {
    pub call: usize,
    pub input: usize,
    pub op: String,
}

impl Trace {
    /// Inputs whose storage came from neither a recorded call nor a recorded source. Each one
    /// is the output of a kernel launched outside the vocabulary, for example a tensor
    /// operator (`&a + &b`), which the static guard cannot see. Views share their source's
    /// storage, so reshapes and transposes are explained by the tensor they view.
    pub fn unexplained_inputs(&self) -> Vec<Unexplained> {
        let mut known: HashSet<usize> = self.sources.iter().map(storage_key).collect();
        let mut out = Vec::new();
        for (i, call) in self.calls.iter().enumerate() {
            for (j, input) in call.inputs.iter().enumerate() {
                if !known.contains(&storage_key(input)) {
                    out.push(Unexplained {
                        call: i,
                        input: j,
                        op: call.op.to_string(),
                    });
                }
            }
            known.insert(storage_key(&call.output));
        }
        out
    }

    /// Whether `t` is (a view of) the output of the last recorded call.
    pub fn ends_with(&self, t: &Tensor) -> bool {
        self.calls
            .last()
            .is_some_and(|c| storage_key(&c.output) == storage_key(t))
    }
}

/// Identity of a tensor's allocation. Recorded tensors stay alive in the trace, so their
/// allocations cannot be reused while it exists.
fn storage_key(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    &*storage as *const _ as usize
}

thread_local! {
    static ACTIVE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// Runs `f` with recording on, and returns its result with everything it recorded.
/// Captures nest: the inner one takes what happens inside it.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Trace) {
    let outer = ACTIVE.with(|a| a.borrow_mut().replace(Trace::default()));
    let result = f();
    let trace = ACTIVE.with(|a| std::mem::replace(&mut *a.borrow_mut(), outer));
    (result, trace.unwrap_or_default())
}

fn with_active(f: impl FnOnce(&mut Trace)) {
    ACTIVE.with(|a| {
        if let Some(trace) = a.borrow_mut().as_mut() {
            f(trace);
        }
    });
}

pub(super) fn record(op: &Op, inputs: &[&Tensor], output: &Tensor) {
    with_active(|t| {
        t.calls.push(Call {
            op: op.clone(),
            inputs: inputs.iter().map(|x| (*x).clone()).collect(),
            output: output.clone(),
        })
    });
}

/// Records a call that wrote a buffer in place, with copies the tracer made of it before
/// (`inputs[0]`) and after (`copied`). The copies and the written buffer count as sources, so
/// the trace can still tell where every input came from.
pub(super) fn record_in_place(op: &Op, inputs: &[&Tensor], written: &Tensor, copied: &Tensor) {
    with_active(|t| {
        t.sources.push(inputs[0].clone());
        t.sources.push(written.clone());
    });
    record(op, inputs, copied);
}

/// Whether a capture is running on this thread.
pub(super) fn is_active() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

pub(super) fn record_source(tensor: &Tensor) {
    with_active(|t| t.sources.push(tensor.clone()));
}
