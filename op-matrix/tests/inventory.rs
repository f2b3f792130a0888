//! The op inventory, traced afresh from the model code, against what is committed: the
//! insta snapshot shows a change in the model's op set in review. The numbers are checked in
//! `kernel_paths.rs`, on every CPU kernel path.

mod common;

use std::path::Path;

use inference::ops::quant::QuantType;
use inference::ops::Op;
use op_matrix::bless;
use op_matrix_core::golden::Phase;

fn sources() -> bless::Sources {
    bless::Sources::committed(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden"))
}

#[test]
fn inventory_snapshot() {
    let cases = bless::trace_all(&sources()).unwrap();
    let listing: Vec<String> = cases
        .iter()
        .map(|c| {
            let phases: Vec<String> = c.phases.iter().map(|p| p.to_string()).collect();
            format!("{} [{}] {}", c.dtype.as_str(), phases.join(","), c.key())
        })
        .collect();
    insta::assert_snapshot!(listing.join("\n"));
}

#[test]
fn every_dtype_traces_every_kernel_of_the_forward_pass() {
    let cases = bless::trace_all(&sources()).unwrap();
    for dtype in ["f32", "bf16", "f16"] {
        let ops: std::collections::BTreeSet<&str> = cases
            .iter()
            .filter(|c| c.dtype.as_str() == dtype)
            .map(|c| c.signature.op.name())
            .collect();
        for op in common::forward_pass_ops() {
            let op = op.name();
            assert!(ops.contains(op), "{dtype}: {op} missing from {ops:?}");
        }
        for quant in QuantType::ALL {
            for phase in [Phase::Prefill, Phase::Decode] {
                let traced = |want: fn(&Op) -> Option<QuantType>| {
                    cases.iter().any(|c| {
                        c.dtype.as_str() == dtype
                            && c.phases.contains(&phase)
                            && want(&c.signature.op) == Some(quant)
                    })
                };
                let qlinear = traced(|op| match op {
                    Op::QLinear { quant } => Some(*quant),
                    _ => None,
                });
                assert!(qlinear, "{dtype} {phase}: no qlinear({quant})");
            }
            let qembed = cases.iter().any(|c| {
                c.dtype.as_str() == dtype
                    && matches!(c.signature.op, Op::QEmbed { quant: q } if q == quant)
            });
            assert!(qembed, "{dtype}: no qembed({quant})");
        }
    }
}
