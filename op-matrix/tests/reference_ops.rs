//! The CPU's custom ops (rope, softmax, rms-norm) against independent f64 implementations,
//! on random shapes including 1 and odd sizes, in every float dtype.

use candle_core::{DType, Tensor};
use inference::ops::OpKind;
use op_matrix::compare::compare;
use op_matrix::fuzz::{self, FuzzCase};
use op_matrix::outcome::Outcome;
use op_matrix::replay::to_f64;
use op_matrix::tolerance;

fn values(t: &Tensor) -> Vec<f64> {
    to_f64(t).unwrap()
}

fn rope_f64(case: &FuzzCase) -> Vec<f64> {
    let (x, cos, sin) = (
        values(&case.inputs[0]),
        values(&case.inputs[1]),
        values(&case.inputs[2]),
    );
    let dims = case.inputs[0].dims();
    let (t, d) = (dims[2], dims[3]);
    let half = d / 2;
    let mut out = vec![0.0; x.len()];
    for (row_index, row) in x.chunks(d).enumerate() {
        let pos = row_index % t;
        for i in 0..half {
            let (c, s) = (cos[pos * half + i], sin[pos * half + i]);
            out[row_index * d + i] = row[i] * c - row[i + half] * s;
            out[row_index * d + i + half] = row[i + half] * c + row[i] * s;
        }
    }
    out
}

fn softmax_f64(case: &FuzzCase) -> Vec<f64> {
    let x = values(&case.inputs[0]);
    let d = *case.inputs[0].dims().last().unwrap();
    x.chunks(d)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

fn rms_norm_f64(case: &FuzzCase) -> Vec<f64> {
    let (x, alpha) = (values(&case.inputs[0]), values(&case.inputs[1]));
    let eps = 1e-6;
    x.chunks(alpha.len())
        .flat_map(|row| {
            let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
            let scale = 1.0 / (ms + eps).sqrt();
            row.iter()
                .zip(&alpha)
                .map(move |(v, a)| v * scale * a)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn check(op: OpKind, reference: fn(&FuzzCase) -> Vec<f64>) {
    let mut failures = Vec::new();
    for case in fuzz::cases(op, 96, 11) {
        let refs: Vec<&Tensor> = case.inputs.iter().collect();
        let out = case.op.apply(&refs).unwrap();
        let dtype = out.dtype();
        // The f64 reference sees the rounded inputs; the kernel may round intermediates too.
        let tol = tolerance::for_op(op, dtype);
        let outcome = compare(&values(&out), &reference(&case), &tol);
        if !matches!(outcome, Outcome::Pass { .. }) {
            failures.push(format!(
                "{} ({dtype:?}): {}",
                case.signature(),
                outcome.detail()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rope_matches_an_f64_reference() {
    check(OpKind::Rope, rope_f64);
}

#[test]
fn softmax_last_dim_matches_an_f64_reference() {
    check(OpKind::SoftmaxLastDim, softmax_f64);
}

#[test]
fn rms_norm_matches_an_f64_reference() {
    check(OpKind::RmsNorm, rms_norm_f64);
}

#[test]
fn the_reference_check_catches_a_wrong_formula() {
    // rotate-half RoPE is not interleaved RoPE: the reference must tell them apart.
    let case = fuzz::cases(OpKind::Rope, 8, 11)
        .into_iter()
        .find(|c| c.inputs[0].dim(3).unwrap() >= 4 && c.inputs[0].dtype() == DType::F32)
        .expect("an f32 case with head_dim >= 4");
    let interleaved = interleaved_rope(&case);
    let outcome = compare(
        &interleaved,
        &rope_f64(&case),
        &tolerance::for_dtype(DType::F32),
    );
    assert!(matches!(outcome, Outcome::Mismatch { .. }));
}

/// Interleaved RoPE computed in f64, the variant Gemma does not use.
fn interleaved_rope(case: &FuzzCase) -> Vec<f64> {
    let (x, cos, sin) = (
        values(&case.inputs[0]),
        values(&case.inputs[1]),
        values(&case.inputs[2]),
    );
    let dims = case.inputs[0].dims();
    let (t, d) = (dims[2], dims[3]);
    let mut out = vec![0.0; x.len()];
    for (r, row) in x.chunks(d).enumerate() {
        let pos = r % t;
        for i in 0..d / 2 {
            let (c, s) = (cos[pos * d / 2 + i], sin[pos * d / 2 + i]);
            out[r * d + 2 * i] = row[2 * i] * c - row[2 * i + 1] * s;
            out[r * d + 2 * i + 1] = row[2 * i] * s + row[2 * i + 1] * c;
        }
    }
    out
}
