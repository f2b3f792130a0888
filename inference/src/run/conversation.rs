//! A multi-turn chat that keeps the KV cache across turns.
//!
//! Each turn renders the whole conversation with the chat template and feeds the model only
//! what its cache does not hold yet. When the conversation no longer fits the context, the
//! oldest exchanges are dropped (the system prompt stays) and the cache is rebuilt.

use crate::error::{Error, Result};
use crate::model::KvCache;
use crate::text::chat::{ChatTemplate, Message};
use crate::text::tokenizer::Tokenizer;

pub struct Conversation {
    template: ChatTemplate,
    system: Option<String>,
    /// User and assistant messages, alternating, oldest first.
    turns: Vec<Message>,
    /// The token ids the cache holds, in order.
    fed: Vec<u32>,
}

/// What to feed the model for a user turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Ids the cache does not hold yet, ending with the generation prompt.
    pub feed: Vec<u32>,
    /// Ids the cache already held and that are reused.
    pub reused: usize,
    /// Oldest user/assistant exchanges dropped to fit the context.
    pub dropped: usize,
}

impl Conversation {
    pub fn new(template: ChatTemplate, system: Option<String>) -> Self {
        Self {
            template,
            system,
            turns: Vec::new(),
            fed: Vec::new(),
        }
    }

    pub fn reset(&mut self, cache: &mut KvCache) {
        self.turns.clear();
        self.fed.clear();
        cache.reset();
    }

    fn render(&self, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        let mut messages = Vec::with_capacity(self.turns.len() + 1);
        if let Some(system) = &self.system {
            messages.push(Message::new("system", system.clone()));
        }
        messages.extend(self.turns.iter().cloned());
        let text = self.template.render(&messages, true)?;
        tokenizer.encode_with(&text, false)
    }

    /// Adds the user's message and returns what to feed, leaving `reserve` positions of the
    /// `context` for the reply. A message that does not fit even alone is an error, and the
    /// conversation is left as it was.
    pub fn user_turn(
        &mut self,
        text: &str,
        tokenizer: &Tokenizer,
        cache: &mut KvCache,
        context: usize,
        reserve: usize,
    ) -> Result<Turn> {
        let before = self.turns.len();
        self.turns.push(Message::new("user", text));
        let fitted = self.fit(tokenizer, context, reserve);
        let (ids, dropped) = match fitted {
            Ok(fitted) => fitted,
            Err(e) => {
                // `fit` kept every earlier turn; the refused message goes.
                self.turns.truncate(before);
                return Err(e);
            }
        };
        let reusable = cache.position() == self.fed.len() && ids.starts_with(&self.fed);
        let reused = if reusable { self.fed.len() } else { 0 };
        if !reusable {
            cache.reset();
        }
        let feed = ids[reused..].to_vec();
        self.fed = ids;
        Ok(Turn {
            feed,
            reused,
            dropped,
        })
    }

    /// The rendered ids with the oldest exchanges left out until they fit, and how many were;
    /// an error if the last message does not fit even alone. The turns are only read: which to
    /// drop is decided on a copy, so that a refused message costs the history nothing.
    fn fit(
        &mut self,
        tokenizer: &Tokenizer,
        context: usize,
        reserve: usize,
    ) -> Result<(Vec<u32>, usize)> {
        let all = self.turns.clone();
        let mut dropped = 0;
        let result = loop {
            let ids = match self.render(tokenizer) {
                Ok(ids) => ids,
                Err(e) => break Err(e),
            };
            if ids.len() + reserve <= context {
                break Ok((ids, dropped));
            }
            if self.turns.len() <= 1 {
                break Err(Error::ContextOverflow {
                    needed: ids.len() + reserve,
                    max: context,
                });
            }
            self.turns.drain(..2);
            dropped += 1;
        };
        if result.is_err() {
            self.turns = all;
        }
        result
    }

    /// Records the model's reply: its text for the next render, and the generated ids the
    /// cache now holds (all but the last, which generation never feeds back).
    pub fn assistant_reply(&mut self, text: &str, generated: &[u32]) {
        self.turns.push(Message::new("assistant", text));
        if let Some((_, fed)) = generated.split_last() {
            self.fed.extend_from_slice(fed);
        }
    }
}
