//! Gemma 3 on Candle, written on a traced op vocabulary.
//!
//! - [`config`] reads every Hub spelling of Gemma 3's `config.json`.
//! - [`weights`] memory-maps safetensors checkpoints.
//! - [`ops`] is the op vocabulary: the only code that launches Candle kernels.
//! - [`model`] is the forward pass, following transformers' Gemma 3.
//! - [`checkpoint`] finds and loads a checkpoint directory with its tokenizer.
//! - [`scoring`] and [`generation`] turn logits into log-probs and tokens;
//!   [`generation_report`] is the document `gemma3 generate --json` prints.

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod conversation;
pub mod detokenize;
pub mod device;
pub mod error;
pub mod generation;
pub mod generation_report;
pub mod hub;
pub mod model;
pub mod ops;
pub mod process;
pub mod sampling;
pub mod scoring;
pub mod tokenizer;
pub mod weights;

pub use error::{Error, Result};
