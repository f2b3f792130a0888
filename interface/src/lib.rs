//! What the `gemma3` CLI, the inference library and the project's tools share, without Candle,
//! so that a tool that only reads the CLI's output or names a kernel path (`cargo xtask`)
//! builds in seconds:
//!
//! - [`named`](mod@named): closed sets of values known by stable names, parsed and shown by them;
//! - [`kernel_path`]: the CPU kernel paths and which this CPU can run;
//! - [`generation_report`]: the document `gemma3 generate --json` prints.

pub mod generation_report;
pub mod kernel_path;
pub mod named;
