//! The op-matrix harness: the Gemma 3 op inventory, traced from the model code, replayed on
//! every backend and compared with CPU goldens. What the shipped CLI needs (reading goldens,
//! replay, comparison, tolerances, the preflight) is in `op_matrix_core`; this crate makes the
//! goldens and runs, fuzzes and reports the matrix.
//!
//! - [`inventory`] traces the model and keeps each distinct [`signature`] with real inputs;
//!   [`bless`] writes them as goldens and [`retrace`] judges a fresh trace against them.
//! - [`backend`] opens CPU, CUDA and Metal; [`run`] checks every traced, [`fuzz`] and [`e2e`]
//!   case on each, applies the [`xfail`] lists, and gives a [`report::Report`], which
//!   [`render`] turns into tables.
//! - [`spec`] holds each op's fuzz strategy and f64 reference.
//! - [`metal`] reads what a Metal device says about itself; [`probe`] checks one before a run.

pub mod backend;
pub mod bless;
pub mod e2e;
pub mod embedded;
pub mod fuzz;
pub mod inventory;
pub mod metal;
pub mod probe;
pub mod render;
pub mod report;
pub mod retrace;
pub mod run;
pub mod signature;
pub mod spec;
pub mod subject;
pub mod xfail;

pub use op_matrix_core::{error, Error, Result};
