//! The sampling flags of `generate` and `chat`, and what an absent one falls back to: the
//! checkpoint's `generation_config.json`, then the built-in default.

use std::fmt::Display;

use anyhow::Result;
use inference::load::generation_config::{self, GenerationConfig};
use inference::run::sampling::{Sampler, SamplingParams};

/// The seed when no `--seed` is given: the same flags give the same text.
const SEED: u64 = 299_792_458;
const REPEAT_LAST_N: usize = 64;

#[derive(clap::Args, Default)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy. Default: the checkpoint's generation_config.json
    /// (greedy unless it says `do_sample: true`), else 0.
    #[arg(long)]
    temperature: Option<f64>,
    /// Keep only the k most likely tokens. Default: generation_config.json's `top_k` when it
    /// samples, else no limit.
    #[arg(long)]
    top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches p. Default:
    /// generation_config.json's `top_p` when it samples, else no limit.
    #[arg(long)]
    top_p: Option<f64>,
    /// The sampler's random seed: the same seed and flags give the same text [default:
    /// 299792458].
    #[arg(short, long)]
    seed: Option<u64>,
    /// Penalty for tokens among the last `--repeat-last-n` (1 is none). Default:
    /// generation_config.json's `repetition_penalty`, else 1.
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// How many of the latest tokens `--repeat-penalty` looks back over [default: 64].
    #[arg(long)]
    repeat_last_n: Option<usize>,
}

/// The settings in use, and those of them that came from the file (as `key value`).
#[derive(Debug, PartialEq)]
pub struct Resolved {
    pub params: SamplingParams,
    pub from_file: Vec<String>,
}

impl SamplingArgs {
    /// The sampler for a checkpoint with these defaults; says at info level which came from
    /// the file.
    pub fn sampler(&self, file: Option<&GenerationConfig>) -> Result<Sampler> {
        let resolved = self.resolve(file);
        if !resolved.from_file.is_empty() {
            tracing::info!(
                "sampling defaults from {}: {} (flags override them)",
                generation_config::FILE,
                resolved.from_file.join(", ")
            );
        }
        Ok(Sampler::new(resolved.params)?)
    }

    /// The flags' own consistency, checked before anything loads.
    pub fn check_flags(&self) -> Result<(), String> {
        self.resolve(None)
            .params
            .validate()
            .map_err(|e| e.to_string())
    }

    /// Each setting from its flag, else from `file`, else the built-in default.
    pub fn resolve(&self, file: Option<&GenerationConfig>) -> Resolved {
        let file = file.cloned().unwrap_or_default();
        let mut from_file = Vec::new();
        let noted = &mut from_file;
        let params = SamplingParams {
            temperature: pick(self.temperature, file.temperature(), "temperature", noted)
                .unwrap_or(0.0),
            top_k: pick(self.top_k, file.top_k(), "top_k", noted),
            top_p: pick(self.top_p, file.top_p(), "top_p", noted),
            seed: self.seed.unwrap_or(SEED),
            repeat_penalty: pick(
                self.repeat_penalty,
                file.repetition_penalty(),
                "repetition_penalty",
                noted,
            )
            .unwrap_or(1.0),
            repeat_last_n: self.repeat_last_n.unwrap_or(REPEAT_LAST_N),
        };
        Resolved { params, from_file }
    }
}

/// The flag's value if given, else the file's, noting that the file gave it.
fn pick<T: Display + Copy>(
    flag: Option<T>,
    file: Option<T>,
    key: &str,
    from_file: &mut Vec<String>,
) -> Option<T> {
    if flag.is_some() {
        return flag;
    }
    if let Some(value) = file {
        from_file.push(format!("{key} {value}"));
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemma() -> GenerationConfig {
        GenerationConfig {
            do_sample: Some(true),
            top_k: Some(64),
            top_p: Some(0.95),
            ..Default::default()
        }
    }

    #[test]
    fn without_flags_the_file_decides_then_the_built_in_defaults() {
        let none = SamplingArgs::default();
        let resolved = none.resolve(Some(&gemma()));
        assert_eq!(
            (
                resolved.params.temperature,
                resolved.params.top_k,
                resolved.params.top_p
            ),
            (1.0, Some(64), Some(0.95))
        );
        assert_eq!(
            resolved.from_file,
            ["temperature 1", "top_k 64", "top_p 0.95"]
        );
        let greedy = GenerationConfig {
            do_sample: Some(false),
            repetition_penalty: Some(1.5),
            ..gemma()
        };
        let resolved = none.resolve(Some(&greedy));
        assert_eq!(resolved.params.temperature, 0.0);
        assert_eq!((resolved.params.top_k, resolved.params.top_p), (None, None));
        assert_eq!(resolved.params.repeat_penalty, 1.5);
        let built_in = none.resolve(None);
        assert_eq!(built_in.params.temperature, 0.0);
        assert_eq!(
            (built_in.params.seed, built_in.params.repeat_last_n),
            (SEED, 64)
        );
        assert!(built_in.from_file.is_empty());
    }

    #[test]
    fn a_flag_overrides_the_file() {
        let flags = SamplingArgs {
            temperature: Some(0.0),
            top_k: Some(5),
            repeat_penalty: Some(1.2),
            seed: Some(7),
            ..Default::default()
        };
        let resolved = flags.resolve(Some(&gemma()));
        assert_eq!(resolved.params.temperature, 0.0);
        assert_eq!(resolved.params.top_k, Some(5));
        assert_eq!(resolved.params.top_p, Some(0.95), "no --top-p: the file's");
        assert_eq!(
            (resolved.params.repeat_penalty, resolved.params.seed),
            (1.2, 7)
        );
        assert_eq!(resolved.from_file, ["top_p 0.95"]);
    }
}
