//! The op-matrix core: what the shipped CLI needs to check a device before it loads a model.
//!
//! - [`golden`] reads the goldens (embedded or from a directory) into replayable cases;
//!   [`layout`] rebuilds their strided inputs exactly on a device.
//! - [`replay`] runs a case on a device and [`compare`] judges it against the [`tolerance`]
//!   table, giving an [`outcome::Outcome`].
//! - [`preflight`] replays a dtype's whole inventory on a device in milliseconds.
//!
//! Tracing the model, writing goldens, fuzzing and the reports are the harness's, in the
//! `op-matrix` crate, so that the CLI's build holds no test or report crate.

pub mod compare;
pub mod error;
pub mod golden;
pub mod layout;
pub mod outcome;
pub mod preflight;
pub mod replay;
pub mod tolerance;

pub use error::{Error, Result};

/// The Candle version the goldens are made and replayed with.
pub const CANDLE_VERSION: &str = "0.11.1";
