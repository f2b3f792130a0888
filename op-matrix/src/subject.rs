//! What a check is of: one op of the vocabulary, or the whole model end to end. Reports,
//! `--op` and the expected-failure lists name it.

use std::fmt;
use std::str::FromStr;

use inference::ops::OpKind;
use serde::Deserialize;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum Subject {
    Op(OpKind),
    /// The whole model's logits, greedy tokens and long-text log-probs.
    EndToEnd,
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Op(op) => op.name(),
            Subject::EndToEnd => "e2e",
        }
    }
}

impl FromStr for Subject {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s == Subject::EndToEnd.name() {
            return Ok(Subject::EndToEnd);
        }
        s.parse()
            .map(Subject::Op)
            .map_err(|e| Error::Usage(format!("{e}, or e2e for the whole model")))
    }
}

impl TryFrom<String> for Subject {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
