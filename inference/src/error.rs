//! The library's error type. Every variant says what went wrong and, where it can, what to do.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The causes are part of the message rather than `#[source]`s, so that a report that
    // prints the whole chain does not print them twice.
    #[error("cannot read {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{} is not valid JSON: {cause}", path.display())]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },

    #[error("config.json: field `{field}` {problem}")]
    ConfigField { field: String, problem: String },

    #[error(
        "config.json: unsupported model_type `{found}`; this engine runs Gemma 3 (`gemma3_text` or `gemma3`)"
    )]
    UnknownModelType { found: String },

    #[error("{}: not a valid safetensors file ({reason}); re-download it or regenerate the checkpoint", path.display())]
    CorruptWeights { path: PathBuf, reason: String },

    #[error("{}: {problem}", path.display())]
    Gguf { path: PathBuf, problem: String },

    /// A readable weight file holding what this engine does not run (an integer or fp8
    /// tensor), or not a file at all.
    #[error("{}: {problem}", path.display())]
    Weights { path: PathBuf, problem: String },

    #[error("weights: tensor `{name}` is missing from the checkpoint (looked in {})", files.join(", "))]
    MissingTensor { name: String, files: Vec<String> },

    #[error("weights: tensor `{name}` has shape {found:?}, but config.json implies {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },

    #[error(
        "the sequence needs {needed} positions but the model's context holds {max} (max_position_embeddings); shorten the input"
    )]
    ContextOverflow { needed: usize, max: usize },

    #[error(
        "the model's logits for token {position} hold {value} where numbers belong: a weight or config value is not finite or too large, or the dtype overflows (f16 does on Gemma 3; use bf16 or f32)"
    )]
    NonFinite { position: usize, value: f32 },

    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    Hub(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }

    pub(crate) fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::ConfigField {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
