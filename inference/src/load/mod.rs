//! Loading a checkpoint: its configuration, its weights, and the directory or Hub repository
//! that holds them.
//!
//! - [`config`] reads every Hub spelling of Gemma 3's `config.json`.
//! - [`weights`] memory-maps safetensors checkpoints.
//! - [`checkpoint`] finds and loads a checkpoint directory with its tokenizer.
//! - [`generation_config`] reads the sampling defaults a checkpoint ships.
//! - [`hub`] fetches one from the Hugging Face Hub.
//! - [`gguf`] reads a GGUF file's configuration and tensor table.
//! - [`memory`] checks that the weights and the KV cache fit before loading.

pub mod checkpoint;
pub mod config;
pub mod generation_config;
pub mod gguf;
pub mod hub;
pub mod memory;
pub mod weights;
