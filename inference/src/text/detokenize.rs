//! Streaming detokenization: text as tokens arrive, never splitting a UTF-8 character.
//!
//! Decoding one token at a time is wrong twice over: byte-fallback tokens (`<0xE2>`) carry
//! parts of a character, which decode to U+FFFD alone, and decoders may treat a sequence's first
//! token specially (a leading space stripped). So each step decodes a short window of recent
//! tokens twice, with and without the new ones, and emits the difference once it no longer ends
//! in U+FFFD.

use crate::error::Result;
use crate::text::tokenizer::Tokenizer;

const REPLACEMENT: char = '\u{FFFD}';

/// Incremental decoder for one generated sequence. Special tokens are left out of the text.
pub struct TokenStream<'a> {
    tokenizer: &'a Tokenizer,
    /// Tokens from `ids[prefix_offset]` on; older ones are dropped.
    ids: Vec<u32>,
    /// `ids[..read_offset]` has been emitted; `ids[..read_offset]` decoded is the context
    /// against which the new tokens' text is measured.
    read_offset: usize,
}

impl<'a> TokenStream<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            read_offset: 0,
        }
    }

    /// Adds a token; returns the text it completes, if any. Text is held back while it ends in
    /// an incomplete UTF-8 sequence (it decodes to U+FFFD), and released with the token that
    /// completes it. A sequence that is invalid, not merely incomplete, and ends the stream is
    /// only released by [`finish`](Self::finish), with its U+FFFD, as a full decode shows it.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self.decode(&self.ids[..self.read_offset])?;
        let text = self.decode(&self.ids)?;
        if text.len() <= prefix.len() || text.ends_with(REPLACEMENT) {
            return Ok(None);
        }
        let piece = new_text(&prefix, &text);
        // The emitted tokens become the context for the next step; older ones are no longer
        // needed.
        self.ids.drain(..self.read_offset);
        self.read_offset = self.ids.len();
        Ok(Some(piece))
    }

    /// The text held back, if any. The stream is empty afterwards and can be reused.
    pub fn finish(&mut self) -> Result<Option<String>> {
        let prefix = self.decode(&self.ids[..self.read_offset])?;
        let text = self.decode(&self.ids)?;
        self.ids.clear();
        self.read_offset = 0;
        if text.len() <= prefix.len() {
            return Ok(None);
        }
        Ok(Some(new_text(&prefix, &text)))
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        if ids.is_empty() {
            return Ok(String::new());
        }
        self.tokenizer.decode(ids, true)
    }
}

/// What `text` adds after `prefix`. Decoders normally extend the prefix's text; should one
/// rewrite it instead, only the part after the common prefix is new.
fn new_text(prefix: &str, text: &str) -> String {
    if let Some(rest) = text.strip_prefix(prefix) {
        return rest.to_string();
    }
    let common = prefix
        .char_indices()
        .zip(text.chars())
        .find(|((_, a), b)| a != b)
        .map_or(prefix.len().min(text.len()), |((i, _), _)| i);
    text[common..].to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn tokenizer() -> Tokenizer {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/models/tiny-text/tokenizer.json");
        Tokenizer::from_file(&path).unwrap()
    }

    /// Streams `ids` one at a time; returns the pieces, the last from `finish`.
    fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
        let mut s = TokenStream::new(tok);
        let mut pieces: Vec<String> = ids.iter().filter_map(|&id| s.push(id).unwrap()).collect();
        pieces.extend(s.finish().unwrap());
        pieces
    }

    fn byte_token(tok: &Tokenizer, b: u8) -> u32 {
        tok.token_id(&format!("<0x{b:02X}>")).unwrap()
    }

    #[test]
    fn multibyte_text_streams_whole_characters() {
        let tok = tokenizer();
        for text in [
            "ünïcode → ✓ 日本",
            "Hello world, ünïcode → ✓ 日本 and more words",
            "日本語のテキスト 🦀 end",
            "  leading and  double  spaces ",
        ] {
            let ids = tok.encode(text).unwrap();
            let full = tok.decode(&ids, true).unwrap();
            assert_eq!(full, text, "the tiny tokenizer round-trips");
            let pieces = stream(&tok, &ids);
            assert_eq!(pieces.concat(), full, "{pieces:?}");
            for p in &pieces {
                assert!(!p.contains(REPLACEMENT), "{p:?} in {pieces:?}");
                assert!(!p.is_empty(), "{pieces:?}");
            }
        }
    }

    #[test]
    fn the_test_text_uses_byte_fallback() {
        // Guards the test above: without byte tokens it would prove nothing.
        let tok = tokenizer();
        let ids = tok.encode("ünïcode → ✓ 日本").unwrap();
        let arrow = [0xE2, 0x86, 0x92].map(|b| byte_token(&tok, b));
        assert!(ids.windows(3).any(|w| w == arrow), "{ids:?}");
    }

    #[test]
    fn holds_back_a_partial_character_until_it_completes() {
        let tok = tokenizer();
        let mut s = TokenStream::new(&tok);
        let a = tok.encode_with("a", false).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(s.push(a[0]).unwrap().as_deref(), Some("a"));
        // ✓ is E2 9C 93.
        assert_eq!(s.push(byte_token(&tok, 0xE2)).unwrap(), None);
        assert_eq!(s.push(byte_token(&tok, 0x9C)).unwrap(), None);
        assert_eq!(
            s.push(byte_token(&tok, 0x93)).unwrap().as_deref(),
            Some("✓")
        );
        assert_eq!(s.finish().unwrap(), None);
    }

    #[test]
    fn spaces_between_words_are_kept() {
        let tok = tokenizer();
        let ids = tok.encode("the cat sat on the mat").unwrap();
        let pieces = stream(&tok, &ids);
        assert!(pieces.len() > 1, "{pieces:?}");
        assert_eq!(pieces.concat(), "the cat sat on the mat");
        assert!(pieces.iter().any(|p| p.starts_with(' ')), "{pieces:?}");
    }

    #[test]
    fn special_tokens_are_skipped() {
        let tok = tokenizer();
        let eot = tok.token_id("<end_of_turn>").unwrap();
        let mut ids = tok.encode("hi there").unwrap(); // begins with <bos>
        ids.push(eot);
        ids.extend(tok.encode_with(" more", false).unwrap());
        let pieces = stream(&tok, &ids);
        assert_eq!(pieces.concat(), "hi there more");
    }

    #[test]
    fn finish_flushes_an_unfinished_sequence_and_resets() {
        let tok = tokenizer();
        let mut s = TokenStream::new(&tok);
        assert_eq!(s.push(byte_token(&tok, 0xE6)).unwrap(), None);
        assert_eq!(s.push(byte_token(&tok, 0x97)).unwrap(), None);
        // The stream ended mid-character: the full decode shows replacement characters, and so
        // does the flush.
        let full = tok
            .decode(&[byte_token(&tok, 0xE6), byte_token(&tok, 0x97)], true)
            .unwrap();
        assert_eq!(s.finish().unwrap(), Some(full));
        assert_eq!(s.finish().unwrap(), None);
        let a = tok.encode_with("a", false).unwrap()[0];
        assert_eq!(s.push(a).unwrap().as_deref(), Some("a"));
    }

    #[test]
    fn new_text_survives_a_rewritten_prefix() {
        assert_eq!(new_text("ab", "abc"), "c");
        assert_eq!(new_text("ab", "axc"), "xc");
        assert_eq!(new_text("é", "ëz"), "ëz");
        assert_eq!(new_text("", "z"), "z");
    }
}
