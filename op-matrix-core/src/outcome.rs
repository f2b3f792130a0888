//! What happened to one case on one backend.

use serde::{Deserialize, Serialize};

/// Error numbers of a comparison with the golden, all computed in f64 on the host.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Errors {
    /// Normalised mean squared error: `sum((a - b)^2) / sum(b^2)` (llama.cpp's NMSE).
    pub nmse: f64,
    pub max_abs: f64,
    /// Largest `|a - b| / |b|` over elements with `b != 0`.
    pub max_rel: f64,
    /// First element outside the elementwise bound, if any.
    pub first_bad: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Pass {
        errors: Errors,
    },
    /// The kernel ran and gave wrong numbers.
    Mismatch {
        errors: Errors,
        reason: String,
    },
    /// The backend returned an error, usually a missing kernel; `error` is its own text.
    Unsupported {
        error: String,
    },
    /// The op panicked; caught so that the run goes on.
    Panic {
        message: String,
    },
    /// The backend is not compiled in or not present; nothing ran.
    Skipped {
        reason: String,
    },
    /// A failure listed in the backend's expected-failure file.
    ExpectedFailure {
        reason: String,
        failure: Box<Outcome>,
    },
    /// Listed as an expected failure, but passed: the list must be pruned.
    UnexpectedPass {
        reason: String,
    },
}

impl Outcome {
    /// Did the case fail in a way that must fail the run?
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Mismatch { .. }
                | Outcome::Unsupported { .. }
                | Outcome::Panic { .. }
                | Outcome::UnexpectedPass { .. }
        )
    }

    pub fn executed(&self) -> bool {
        !matches!(self, Outcome::Skipped { .. })
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass { .. } => "pass",
            Outcome::Mismatch { .. } => "mismatch",
            Outcome::Unsupported { .. } => "unsupported",
            Outcome::Panic { .. } => "panic",
            Outcome::Skipped { .. } => "skipped",
            Outcome::ExpectedFailure { .. } => "xfail",
            Outcome::UnexpectedPass { .. } => "unexpected_pass",
        }
    }

    /// One line for humans: the reason or error text, or the error numbers.
    pub fn detail(&self) -> String {
        match self {
            Outcome::Pass { errors } => {
                format!("nmse {:.2e}, max abs {:.2e}", errors.nmse, errors.max_abs)
            }
            Outcome::Mismatch { errors, reason } => format!(
                "{reason}; nmse {:.2e}, max abs {:.2e}, max rel {:.2e}, first bad index {}",
                errors.nmse,
                errors.max_abs,
                errors.max_rel,
                errors.first_bad.map_or("-".to_string(), |i| i.to_string())
            ),
            Outcome::Unsupported { error } => error.clone(),
            Outcome::Panic { message } => format!("panic: {message}"),
            Outcome::Skipped { reason } => reason.clone(),
            Outcome::ExpectedFailure { reason, failure } => {
                format!("expected: {reason} ({})", failure.label())
            }
            Outcome::UnexpectedPass { reason } => {
                format!("unexpected pass: remove it from the list (listed because: {reason})")
            }
        }
    }
}
