//! The op-matrix: the Gemma 3 op inventory, traced from the model code, replayed on every
//! backend and compared with CPU goldens.
//!
//! - [`signature`] names each distinct op call by op, params, dtypes and layouts.

pub mod signature;
