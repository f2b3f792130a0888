//! Every op of the vocabulary against its independent f64 implementation
//! (`op_matrix::spec`), on random shapes including 1 and odd sizes, strided and broadcast
//! inputs, in every float dtype, on every backend compiled in.

mod common;

use candle_core::{DType, Device};
use inference::ops::OpKind;
use op_matrix::fuzz::{self, FuzzCase};
use op_matrix::spec;
use op_matrix_core::compare::compare;
use op_matrix_core::outcome::Outcome;
use op_matrix_core::tolerance;

/// Cases per op; with the three dtypes, each op meets about 16 of each.
const CASES: usize = 48;

fn every_op_matches_its_f64_reference(device: &Device) {
    let mut failures = Vec::new();
    for op in OpKind::ALL {
        for case in fuzz::cases(op, CASES, 11) {
            let outcome = fuzz::check_reference(&case, device);
            if !matches!(outcome, Outcome::Pass { .. }) {
                failures.push(format!("{}: {}", case.signature(), outcome.detail()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

common::on_every_backend!(every_op_matches_its_f64_reference);

#[test]
fn the_reference_check_catches_a_wrong_formula() {
    // rotate-half RoPE is not interleaved RoPE: the reference must tell them apart.
    let case = fuzz::cases(OpKind::Rope, 8, 11)
        .into_iter()
        .find(|c| c.inputs[0].dim(3).unwrap() >= 4 && c.inputs[0].dtype() == DType::F32)
        .expect("an f32 case with head_dim >= 4");
    let outcome = compare(
        &interleaved_rope(&case),
        &spec::reference(&case).unwrap(),
        &tolerance::for_dtype(DType::F32),
    );
    assert!(matches!(outcome, Outcome::Mismatch { .. }));
}

/// Interleaved RoPE computed in f64, the variant Gemma does not use.
fn interleaved_rope(case: &FuzzCase) -> Vec<f64> {
    let [x, cos, sin] = [0, 1, 2].map(|i| spec::Host::of(&case.inputs[i]).unwrap());
    let (t, d) = (x.dims[2], x.dims[3]);
    let mut out = vec![0.0; x.values.len()];
    for (r, row) in x.values.chunks(d).enumerate() {
        let pos = r % t;
        for i in 0..d / 2 {
            let (c, s) = (cos.values[pos * d / 2 + i], sin.values[pos * d / 2 + i]);
            out[r * d + 2 * i] = row[2 * i] * c - row[2 * i + 1] * s;
            out[r * d + 2 * i + 1] = row[2 * i] * s + row[2 * i + 1] * c;
        }
    }
    out
}
