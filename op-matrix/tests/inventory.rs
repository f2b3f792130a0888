//! The op inventory, traced afresh from the model code, against what is committed: the
//! insta snapshot shows a change in the model's op set in review. The numbers are checked in
//! `kernel_paths.rs`, on every CPU kernel path.

mod common;

use std::path::{Path, PathBuf};

use op_matrix::bless;

fn models() -> Vec<(&'static str, PathBuf)> {
    bless::committed_models(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden"))
}

fn refs<'a>(models: &'a [(&'static str, PathBuf)]) -> Vec<(&'static str, &'a Path)> {
    models.iter().map(|(n, p)| (*n, p.as_path())).collect()
}

#[test]
fn inventory_snapshot() {
    let models = models();
    let cases = bless::trace_all(&refs(&models)).unwrap();
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
    let models = models();
    let cases = bless::trace_all(&refs(&models)).unwrap();
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
    }
}
