//! Expected failures, one file per backend (`ci/xfail/<backend>.toml`), and one for what fails
//! only on a virtual machine's Metal device (`metal-paravirtual.toml`, applied on top of
//! `metal.toml` when the device is paravirtual):
//!
//! ```toml
//! [[xfail]]
//! op = "rope"
//! dtype = "bf16"
//! reason = "why it fails and the upstream issue"
//! ```
//!
//! A listed case that fails is an expected failure; a listed case that passes fails the run
//! until the entry is removed, so the list cannot rot.

use std::collections::HashMap;
use std::path::Path;

use op_matrix_core::outcome::Outcome;
use serde::Deserialize;

use candle_core::DType;

use crate::embedded;
use crate::error::{Error, Result};
use crate::subject::Subject;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entry {
    pub op: Subject,
    #[serde(with = "inference::ops::dtype_name")]
    pub dtype: DType,
    pub reason: String,
}

/// Every list, by file stem.
pub const LISTS: [&str; 4] = ["cpu", "cuda", "metal", "metal-paravirtual"];

/// Every list by name, read from `dir` when given, else the copies compiled into the crate.
pub fn lists(dir: Option<&Path>) -> Result<HashMap<String, List>> {
    LISTS
        .into_iter()
        .map(|name| {
            let list = match dir {
                Some(dir) => List::read(dir, name)?,
                None => List::parse(embedded::xfail_list(name))
                    .map_err(|m| Error::format(format!("ci/xfail/{name}.toml (embedded)"), m))?,
            };
            Ok((name.to_string(), list))
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct List {
    #[serde(default)]
    pub xfail: Vec<Entry>,
}

impl List {
    /// Reads `<dir>/<backend>.toml`; a missing file is an empty list.
    pub fn read(dir: &Path, backend: &str) -> Result<Self> {
        let path = dir.join(format!("{backend}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map_err(|m| Error::format(&path, m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The entries of `lists` in order; where two list a case, the first reason is kept.
    pub fn join<'a>(lists: impl IntoIterator<Item = &'a List>) -> Self {
        Self {
            xfail: lists
                .into_iter()
                .flat_map(|l| l.xfail.iter().cloned())
                .collect(),
        }
    }

    fn find(&self, op: Subject, dtype: DType) -> Option<&Entry> {
        self.xfail.iter().find(|e| e.op == op && e.dtype == dtype)
    }

    /// Applies the list to a raw outcome.
    pub fn apply(&self, op: Subject, dtype: DType, outcome: Outcome) -> Outcome {
        let Some(entry) = self.find(op, dtype) else {
            return outcome;
        };
        match outcome {
            Outcome::Pass { .. } => Outcome::UnexpectedPass {
                reason: entry.reason.clone(),
            },
            o if o.is_failure() => Outcome::ExpectedFailure {
                reason: entry.reason.clone(),
                failure: Box::new(o),
            },
            o => o,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use op_matrix_core::outcome::Errors;

    fn op(name: &str) -> Subject {
        name.parse().unwrap()
    }

    const LIST: &str = r#"
[[xfail]]
op = "rope"
dtype = "bf16"
reason = "no bf16 rope kernel"
"#;

    #[test]
    fn a_listed_failure_is_expected_and_does_not_fail_the_run() {
        let list = List::parse(LIST).unwrap();
        let o = list.apply(
            op("rope"),
            DType::BF16,
            Outcome::Unsupported {
                error: "no kernel".into(),
            },
        );
        assert!(matches!(o, Outcome::ExpectedFailure { .. }));
        assert!(!o.is_failure());
    }

    #[test]
    fn a_listed_case_that_passes_is_an_unexpected_pass() {
        let list = List::parse(LIST).unwrap();
        let o = list.apply(
            op("rope"),
            DType::BF16,
            Outcome::Pass {
                errors: Errors::default(),
            },
        );
        assert!(o.is_failure());
        assert!(o
            .detail()
            .contains("unexpected pass: remove it from the list"));
    }

    #[test]
    fn unlisted_cases_are_unchanged() {
        let list = List::parse(LIST).unwrap();
        let fail = Outcome::Unsupported { error: "x".into() };
        assert_eq!(list.apply(op("rope"), DType::F32, fail.clone()), fail);
        assert_eq!(list.apply(op("matmul"), DType::BF16, fail.clone()), fail);
    }

    #[test]
    fn joined_lists_expect_the_failures_of_each() {
        let extra = List::parse(
            "[[xfail]]\nop = \"matmul\"\ndtype = \"f32\"\nreason = \"probe: no simdgroup matrices\"\n",
        )
        .unwrap();
        let base = List::parse(LIST).unwrap();
        let list = List::join([&base, &extra]);
        let fail = || Outcome::Unsupported { error: "x".into() };
        assert!(matches!(
            list.apply(op("rope"), DType::BF16, fail()),
            Outcome::ExpectedFailure { .. }
        ));
        assert!(matches!(
            list.apply(op("matmul"), DType::F32, fail()),
            Outcome::ExpectedFailure { .. }
        ));
    }

    #[test]
    fn a_malformed_list_is_an_error() {
        assert!(List::parse("[[xfail]]\nop = 1\n").is_err());
    }
}
