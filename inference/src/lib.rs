//! Gemma 3 on Candle, written on a traced op vocabulary.
//!
//! - [`load`] reads a checkpoint (configuration, weights, tokenizer) from a directory or the Hub.
//! - [`ops`] is the op vocabulary: the only code that launches Candle kernels.
//! - [`model`] is the forward pass, following transformers' Gemma 3.
//! - [`text`] turns text into tokens and back, through chat templates.
//! - [`run`] generates, chats and scores with a loaded model.
//! - [`device`] and [`process`] choose the device and tune the process.

pub mod device;
pub mod error;
pub mod load;
pub mod model;
pub mod ops;
pub mod process;
pub mod run;
pub mod text;

pub use error::{Error, Result};
