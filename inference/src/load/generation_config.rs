//! `generation_config.json`: the sampling a checkpoint's authors chose, read as transformers
//! reads it. Gemma's say `do_sample: true, top_k: 64, top_p: 0.95`.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The file's name in a checkpoint directory.
pub const FILE: &str = "generation_config.json";

/// The keys of the file that decide sampling; every other key is ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GenerationConfig {
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub repetition_penalty: Option<f32>,
}

impl GenerationConfig {
    /// Reads and checks the file: a value out of its range is an error naming the file and
    /// the key, as a value no sampler can use.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let config: Self = serde_json::from_slice(&bytes).map_err(|cause| Error::Json {
            path: path.to_path_buf(),
            cause,
        })?;
        config.check().map_err(|problem| {
            Error::Invalid(format!(
                "{}: {problem}; fix the file, or give the matching flag to override it",
                path.display()
            ))
        })?;
        Ok(config)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if let Some(t) = self.temperature.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(format!("`temperature` must be finite and >= 0, got {t}"));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(format!("`top_p` must be in (0, 1], got {p}"));
        }
        if let Some(r) = self
            .repetition_penalty
            .filter(|r| !(r.is_finite() && *r > 0.0))
        {
            return Err(format!(
                "`repetition_penalty` must be finite and > 0, got {r}"
            ));
        }
        Ok(())
    }

    fn samples(&self) -> bool {
        self.do_sample == Some(true)
    }

    /// `0` (greedy) when `do_sample` is false, the file's temperature (else 1) when it is
    /// true; `None` when the file does not say.
    pub fn temperature(&self) -> Option<f64> {
        self.do_sample.map(|sample| {
            if sample {
                self.temperature.unwrap_or(1.0)
            } else {
                0.0
            }
        })
    }

    /// Only when sampling; `0` means no limit, as in transformers.
    pub fn top_k(&self) -> Option<usize> {
        self.top_k.filter(|&k| self.samples() && k > 0)
    }

    /// Only when sampling.
    pub fn top_p(&self) -> Option<f64> {
        self.top_p.filter(|_| self.samples())
    }

    /// Applied in greedy decoding too, as transformers does.
    pub fn repetition_penalty(&self) -> Option<f32> {
        self.repetition_penalty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> GenerationConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, json).unwrap();
        GenerationConfig::from_file(&path).unwrap()
    }

    #[test]
    fn do_sample_decides_whether_the_sampling_keys_count() {
        let gemma =
            parse(r#"{"do_sample": true, "top_k": 64, "top_p": 0.95, "eos_token_id": [1, 106]}"#);
        assert_eq!(gemma.temperature(), Some(1.0));
        assert_eq!(gemma.top_k(), Some(64));
        assert_eq!(gemma.top_p(), Some(0.95));
        let greedy = parse(
            r#"{"do_sample": false, "top_k": 64, "temperature": 0.7, "repetition_penalty": 1.1}"#,
        );
        assert_eq!(greedy.temperature(), Some(0.0));
        assert_eq!((greedy.top_k(), greedy.top_p()), (None, None));
        assert_eq!(greedy.repetition_penalty(), Some(1.1));
        let silent = parse(r#"{"bos_token_id": 2}"#);
        assert_eq!(silent.temperature(), None);
        assert_eq!(parse(r#"{"do_sample": true, "top_k": 0}"#).top_k(), None);
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for (json, says) in [
            ("{\"do_sample\": tru", "not valid JSON"),
            ("{\"top_k\": \"many\"}", "not valid JSON"),
            ("{\"top_p\": 1.5}", "`top_p` must be in (0, 1]"),
        ] {
            std::fs::write(&path, json).unwrap();
            let e = GenerationConfig::from_file(&path).unwrap_err().to_string();
            assert!(e.contains(FILE) && e.contains(says), "{json}: {e}");
        }
    }
}
