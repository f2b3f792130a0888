//! A multi-turn chat that keeps the KV cache across turns.
//!
//! Each turn renders the whole conversation with the chat template and feeds the model only
//! what its cache does not hold yet. The rendering need not extend what the cache holds: a
//! template trims the whitespace around a reply, and text tokenizes apart from how it was
//! generated, so the cache keeps the longest prefix the two share. When the conversation no longer fits the context, the
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

    /// The ids of the conversation made of `turns` (the system prompt first).
    fn render(&self, turns: &[Message], tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        let mut messages = Vec::with_capacity(turns.len() + 1);
        if let Some(system) = &self.system {
            messages.push(Message::new("system", system.clone()));
        }
        messages.extend(turns.iter().cloned());
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
        self.turns.push(Message::new("user", text));
        let (ids, dropped) = match self.fit(tokenizer, context, reserve) {
            Ok(fitted) => fitted,
            Err(e) => {
                self.turns.pop();
                return Err(e);
            }
        };
        self.turns.drain(..2 * dropped);
        let shared = if cache.position() == self.fed.len() {
            let common = ids
                .iter()
                .zip(&self.fed)
                .take_while(|(a, b)| a == b)
                .count();
            // At least the generation prompt is fed, so that the model computes the logits.
            common.min(ids.len().saturating_sub(1))
        } else {
            0
        };
        let reused = if shared > 0 && cache.roll_back(shared) {
            shared
        } else {
            cache.reset();
            0
        };
        let feed = ids[reused..].to_vec();
        self.fed = ids;
        Ok(Turn {
            feed,
            reused,
            dropped,
        })
    }

    /// The rendered ids with the oldest exchanges left out until they fit, and how many
    /// exchanges that is; an error if the last message does not fit even alone. Nothing is
    /// dropped here, so a refused message costs the history nothing.
    fn fit(
        &self,
        tokenizer: &Tokenizer,
        context: usize,
        reserve: usize,
    ) -> Result<(Vec<u32>, usize)> {
        let mut dropped = 0;
        loop {
            let turns = &self.turns[2 * dropped..];
            let ids = self.render(turns, tokenizer)?;
            if ids.len() + reserve <= context {
                return Ok((ids, dropped));
            }
            if turns.len() <= 1 {
                return Err(Error::ContextOverflow {
                    needed: ids.len() + reserve,
                    max: context,
                });
            }
            dropped += 1;
        }
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
