//! Running a loaded model: [`generation`] with [`sampling`] (and the [`generation_report`]
//! that `gemma3 generate --json` prints), multi-turn chats that keep their KV cache
//! ([`conversation`]), and [`scoring`] a text's log-probabilities.

pub mod conversation;
pub mod generation;
pub mod generation_report;
pub mod sampling;
pub mod scoring;
