//! The op-matrix: the Gemma 3 op inventory, traced from the model code, replayed on every
//! backend and compared with CPU goldens.
//!
//! - [`signature`] names each distinct op call by op, params, dtypes and layouts.
//! - [`layout`] stores strided inputs as a base buffer and rebuilds them exactly on a device.

pub mod error;
pub mod layout;
pub mod signature;

pub use error::{Error, Result};
