//! The op-matrix: the Gemma 3 op inventory, traced from the model code, replayed on every
//! backend and compared with CPU goldens.
//!
//! - [`inventory`] traces the model and keeps each distinct [`signature`] with real inputs.
//! - [`layout`] stores strided inputs as a base buffer and rebuilds them exactly on a device.
//! - [`golden`] writes and reads the goldens; [`e2e`] holds whole-model logits.
//! - [`backend`] opens CPU, CUDA and Metal; [`replay`] runs a case and [`compare`] judges it
//!   against the [`tolerance`] table; [`xfail`] applies expected failures.
//! - [`run`] ties these into a [`report::Report`], which [`render`] turns into tables.
//! - [`metal`] reads what a Metal device says about itself; [`probe`] checks one before a run.

pub mod backend;
pub mod bless;
pub mod compare;
pub mod e2e;
pub mod embedded;
pub mod error;
pub mod fuzz;
pub mod golden;
pub mod inventory;
pub mod layout;
pub mod metal;
pub mod outcome;
pub mod preflight;
pub mod probe;
pub mod render;
pub mod replay;
pub mod report;
pub mod run;
pub mod signature;
pub mod tolerance;
pub mod xfail;

pub use error::{Error, Result};

/// The Candle version the goldens are made and replayed with.
pub const CANDLE_VERSION: &str = "0.11.1";
