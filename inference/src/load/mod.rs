//! Loading a checkpoint: its configuration, its weights, and the directory or Hub repository
//! that holds them.
//!
//! - [`config`] reads every Hub spelling of Gemma 3's `config.json`.
//! - [`weights`] memory-maps safetensors checkpoints.
//! - [`checkpoint`] finds and loads a checkpoint directory with its tokenizer.
//! - [`hub`] fetches one from the Hugging Face Hub.
//! - [`gguf`] reads a GGUF file's configuration and tensor table.

pub mod checkpoint;
pub mod config;
pub mod gguf;
pub mod hub;
pub mod weights;
