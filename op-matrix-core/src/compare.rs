//! Comparison of a backend's output with the golden, in f64 on the host.
//!
//! Rules: any NaN fails; every infinity must match the golden in position and sign; finite
//! elements are held to the [`Tolerance`].

use crate::outcome::{Errors, Outcome};
use crate::tolerance::Tolerance;

/// Compares `actual` with `expected` (same length) and classifies the result.
pub fn compare(actual: &[f64], expected: &[f64], tol: &Tolerance) -> Outcome {
    if actual.len() != expected.len() {
        return Outcome::Mismatch {
            errors: Errors::default(),
            reason: format!("{} elements, expected {}", actual.len(), expected.len()),
        };
    }
    let scale = expected
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    let mut errors = Errors::default();
    let (mut sq_err, mut sq_ref) = (0.0, 0.0);
    let mut reason = None;
    for (i, (&a, &b)) in actual.iter().zip(expected).enumerate() {
        if a.is_nan() || b.is_nan() {
            let side = if a.is_nan() { "output" } else { "golden" };
            reason.get_or_insert_with(|| format!("NaN in the {side} at index {i}"));
            errors.first_bad.get_or_insert(i);
            continue;
        }
        if a.is_infinite() || b.is_infinite() {
            if a != b {
                reason.get_or_insert_with(|| {
                    format!("infinity mismatch at index {i}: {a} vs golden {b}")
                });
                errors.first_bad.get_or_insert(i);
            }
            continue;
        }
        let err = (a - b).abs();
        sq_err += err * err;
        sq_ref += b * b;
        errors.max_abs = errors.max_abs.max(err);
        if b != 0.0 {
            errors.max_rel = errors.max_rel.max(err / b.abs());
        }
        if err > tol.rtol * b.abs() + tol.atol * scale {
            errors.first_bad.get_or_insert(i);
        }
    }
    // An all-zero golden has no scale: the raw squared error stands in for the NMSE.
    errors.nmse = if sq_err == 0.0 {
        0.0
    } else if sq_ref == 0.0 {
        sq_err
    } else {
        sq_err / sq_ref
    };
    if let Some(reason) = reason {
        return Outcome::Mismatch { errors, reason };
    }
    if errors.nmse > tol.nmse {
        return Outcome::Mismatch {
            reason: format!("nmse {:.2e} above {:.0e}", errors.nmse, tol.nmse),
            errors,
        };
    }
    if let Some(i) = errors.first_bad {
        return Outcome::Mismatch {
            reason: format!(
                "element {i}: {} vs golden {} is outside rtol {:.0e} + atol {:.0e}·max|golden|",
                actual[i], expected[i], tol.rtol, tol.atol
            ),
            errors,
        };
    }
    Outcome::Pass { errors }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tolerance::for_dtype;
    use candle_core::DType;

    fn tol() -> Tolerance {
        for_dtype(DType::F32)
    }

    fn mismatch_reason(o: Outcome) -> String {
        match o {
            Outcome::Mismatch { reason, .. } => reason,
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn identical_values_pass_with_zero_error() {
        let x = [1.0, -2.0, f64::NEG_INFINITY, 0.0];
        assert_eq!(
            compare(&x, &x, &tol()),
            Outcome::Pass {
                errors: Errors::default()
            }
        );
    }

    #[test]
    fn any_nan_fails_even_where_the_golden_is_nan() {
        let r = mismatch_reason(compare(&[1.0, f64::NAN], &[1.0, 2.0], &tol()));
        assert!(r.contains("NaN in the output at index 1"), "{r}");
        let r = mismatch_reason(compare(&[f64::NAN], &[f64::NAN], &tol()));
        assert!(r.contains("NaN"), "{r}");
    }

    #[test]
    fn infinities_must_match_in_position_and_sign() {
        let r = mismatch_reason(compare(
            &[f64::INFINITY, 0.0],
            &[f64::NEG_INFINITY, 0.0],
            &tol(),
        ));
        assert!(r.contains("infinity mismatch at index 0"), "{r}");
        let r = mismatch_reason(compare(&[0.0, f64::NEG_INFINITY], &[0.0, -1e30], &tol()));
        assert!(r.contains("index 1"), "{r}");
        assert!(matches!(
            compare(&[f64::NEG_INFINITY, 1.0], &[f64::NEG_INFINITY, 1.0], &tol()),
            Outcome::Pass { .. }
        ));
    }

    #[test]
    fn small_reordering_error_passes_and_large_error_fails_with_numbers() {
        let b: Vec<f64> = (0..100).map(|i| (i as f64).sin()).collect();
        let close: Vec<f64> = b.iter().map(|x| x * (1.0 + 1e-7)).collect();
        assert!(matches!(compare(&close, &b, &tol()), Outcome::Pass { .. }));
        let mut far = b.clone();
        far[42] += 0.5;
        match compare(&far, &b, &tol()) {
            Outcome::Mismatch { errors, .. } => {
                assert_eq!(errors.first_bad, Some(42));
                assert!((errors.max_abs - 0.5).abs() < 1e-12);
                assert!(errors.nmse > tol().nmse);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_single_bad_element_fails_even_when_nmse_is_small() {
        let b = vec![1.0; 1_000_000];
        let mut a = b.clone();
        a[7] = 1.01;
        let r = mismatch_reason(compare(&a, &b, &tol()));
        assert!(r.starts_with("element 7"), "{r}");
    }

    #[test]
    fn length_mismatch_fails() {
        let r = mismatch_reason(compare(&[1.0], &[1.0, 2.0], &tol()));
        assert!(r.contains("1 elements, expected 2"), "{r}");
    }
}
