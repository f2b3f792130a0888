//! Running a loaded model: [`generation`] with [`sampling`], multi-turn chats that keep their
//! KV cache ([`conversation`]), and [`scoring`] a text's log-probabilities.

pub mod conversation;
pub mod generation;
pub mod sampling;
pub mod scoring;
