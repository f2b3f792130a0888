//! Text in and out of the model: the tokenizer, chat templates and streaming detokenization.

pub mod chat;
pub mod detokenize;
pub mod tokenizer;
