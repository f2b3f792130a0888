//! The trace of a forward pass sees every kernel the model launches, and the trace's closure
//! check catches a kernel launched outside the op vocabulary.

mod common;

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
use common::*;
use inference::load::checkpoint::Checkpoint;
use inference::model::Logits;
use inference::ops::{self, trace};

/// Loads a checkpoint and runs a prefill longer than the window, then decode steps, all inside
/// one capture, so weights are recorded as sources.
fn traced_run(preset: &str, dtype: DType) -> (trace::Trace, Tensor) {
    let (logits, trace) = trace::capture(|| {
        let model = Checkpoint::open(&checkpoint_dir(preset))
            .and_then(|c| c.load_model(&Device::Cpu, dtype))
            .unwrap();
        let ids = ids(&reference(preset)["prompt"]["token_ids"]);
        assert!(ids.len() > model.config().sliding_window);
        let mut cache = model.new_cache();
        model.forward(&ids, &mut cache, Logits::All).unwrap();
        let mut last = None;
        for &id in &ids[..3] {
            last = Some(model.forward(&[id], &mut cache, Logits::Last).unwrap());
        }
        last.unwrap()
    });
    (trace, logits)
}

#[test]
fn every_op_input_comes_from_a_recorded_op_or_a_host_source() {
    for preset in PRESETS {
        for dtype in inference::ops::DTYPES {
            let (trace, logits) = traced_run(preset, dtype);
            let unexplained = trace.unexplained_inputs();
            assert!(
                unexplained.is_empty(),
                "{preset} {dtype:?}: {unexplained:?}"
            );
            assert!(
                trace.ends_with(&logits),
                "{preset} {dtype:?}: logits not produced by a recorded op"
            );
        }
    }
}

#[test]
fn the_trace_names_every_op_kind_of_the_forward_pass() {
    let (trace, _) = traced_run("tiny-text", DType::BF16);
    let names: BTreeSet<&str> = trace.calls.iter().map(|c| c.op.name()).collect();
    let expected: BTreeSet<&str> = [
        "index_select",
        "affine",
        "cast",
        "rms_norm",
        "linear",
        "matmul",
        "contiguous",
        "rope",
        "write_at",
        "broadcast_add",
        "softmax_last_dim",
        "gelu_tanh",
        "mul",
        "add",
    ]
    .into();
    assert_eq!(names, expected);
}

#[test]
fn the_guard_catches_a_kernel_launched_outside_the_vocabulary() {
    let (_, trace) = trace::capture(|| {
        let a = ops::source(Tensor::ones((2, 2), DType::F32, &Device::Cpu).unwrap());
        let inside = ops::add(&a, &a).unwrap();
        // A deliberate bypass: Candle's operator, not the vocabulary.
        let bypass = (&inside + &a).unwrap();
        ops::matmul(&bypass, &inside.t().unwrap()).unwrap()
    });
    let unexplained = trace.unexplained_inputs();
    assert_eq!(unexplained.len(), 1, "{unexplained:?}");
    assert_eq!((unexplained[0].call, unexplained[0].input), (1, 0));
    assert_eq!(unexplained[0].op, "matmul");
}

#[test]
fn nothing_is_recorded_outside_a_capture() {
    let a = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
    ops::add(&a, &a).unwrap();
    let (_, trace) = trace::capture(|| ());
    assert!(trace.calls.is_empty() && trace.sources.is_empty());
}
