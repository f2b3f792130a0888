//! The messages of `chat`'s input: a line, or the lines of a block between `"""` marks, as
//! ollama reads them (for pasted text). A terminal's lines come through a line editor with
//! history ([`terminal`]); a pipe's or a file's are read with a bound ([`piped`]). Either
//! way, a line that cannot be a message is refused on its own and the conversation goes on.

mod piped;
mod terminal;

use std::io::IsTerminal;

use anyhow::Result;

/// One line of input.
#[derive(Debug, PartialEq)]
pub enum Line {
    Text(String),
    /// A line that cannot be a message, with why.
    Refused(String),
}

/// Where lines come from.
pub trait LineSource {
    /// The next line without its line ending; `None` at the end of the input. `more` is
    /// whether it continues a block (a terminal prompts for it differently).
    fn next_line(&mut self, more: bool) -> Result<Option<Line>>;
}

/// A line of `bytes` bytes where at most `limit` fit.
fn too_long(bytes: usize, limit: usize) -> Line {
    Line::Refused(format!(
        "a line of {bytes} bytes is longer than any message this model's context can hold ({limit} bytes at most); nothing was sent"
    ))
}

/// What opens and closes a message of several lines.
const BLOCK: &str = "\"\"\"";

/// The messages of a source of lines, each of at most `limit` bytes.
pub struct Messages<'a> {
    source: Box<dyn LineSource + 'a>,
    limit: usize,
}

impl Messages<'static> {
    /// Standard input's messages: through the line editor on a terminal, else as read.
    pub fn stdin(limit: usize) -> Result<Self> {
        let source: Box<dyn LineSource> = if std::io::stdin().is_terminal() {
            Box::new(terminal::Terminal::new(limit)?)
        } else {
            Box::new(piped::Lines::new(std::io::stdin().lock(), limit))
        };
        Ok(Messages { source, limit })
    }
}

impl<'a> Messages<'a> {
    /// The next message: a line, or a `"""` block's lines joined by newlines (the text on the
    /// marks' own lines included); `None` at the end of the input, which also closes a block.
    pub fn next(&mut self) -> Result<Option<Line>> {
        let first = match self.source.next_line(false)? {
            Some(Line::Text(text)) => text,
            other => return Ok(other),
        };
        let Some(opened) = first.trim_start().strip_prefix(BLOCK) else {
            return Ok(Some(Line::Text(first)));
        };
        if let Some(one) = opened.trim_end().strip_suffix(BLOCK) {
            return Ok(Some(Line::Text(one.to_string())));
        }
        let mut parts: Vec<String> = Vec::new();
        if !opened.is_empty() {
            parts.push(opened.to_string());
        }
        let (mut bytes, mut refused) = (opened.len(), None);
        loop {
            let line = match self.source.next_line(true)? {
                None => break,
                Some(Line::Refused(why)) => {
                    refused.get_or_insert(why);
                    continue;
                }
                Some(Line::Text(line)) => line,
            };
            let (part, closed) = match line.trim_end().strip_suffix(BLOCK) {
                Some(part) => (part.to_string(), true),
                None => (line, false),
            };
            bytes = bytes.saturating_add(part.len() + 1);
            if !(closed && part.is_empty()) && bytes <= self.limit {
                parts.push(part);
            }
            if closed {
                break;
            }
        }
        if bytes > self.limit {
            refused.get_or_insert(format!(
                "a message of {bytes} bytes is longer than any this model's context can hold ({} bytes at most); nothing was sent",
                self.limit
            ));
        }
        Ok(Some(match refused {
            Some(why) => Line::Refused(why),
            None => Line::Text(parts.join("\n")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(input: &[u8], limit: usize) -> Vec<Line> {
        // A tiny buffer, so lines cross reads as long ones do.
        let lines = piped::Lines::new(std::io::BufReader::with_capacity(3, input), limit);
        let mut messages = Messages {
            source: Box::new(lines),
            limit,
        };
        std::iter::from_fn(|| messages.next().unwrap()).collect()
    }

    #[test]
    fn a_block_between_triple_quotes_is_one_message() {
        let text = |s: &str| Line::Text(s.into());
        let input =
            b"hi\n\"\"\"\nfirst\n\n  second\n\"\"\"\n\"\"\"a\nb\"\"\"\n\"\"\"one\"\"\"\nlast";
        assert_eq!(
            messages(input, 100),
            [
                text("hi"),
                text("first\n\n  second"),
                text("a\nb"),
                text("one"),
                text("last")
            ]
        );
        // The end of the input closes a block; a block too long, or with a bad line, is
        // refused whole.
        assert_eq!(messages(b"\"\"\"\nx\ny", 100), [text("x\ny")]);
        assert!(
            matches!(&messages(b"\"\"\"\n0123456789\n0123456789\n\"\"\"\nok", 15)[..],
            [Line::Refused(why), Line::Text(ok)] if why.contains("bytes") && ok == "ok")
        );
        assert!(matches!(&messages(b"\"\"\"\n\xff\nx\n\"\"\"", 100)[..],
            [Line::Refused(why)] if why.contains("UTF-8")));
    }

    /// Lines as a terminal gives them, with whether each was asked for inside a block.
    struct Typed {
        lines: std::vec::IntoIter<&'static str>,
        asked: Vec<bool>,
    }

    impl LineSource for &mut Typed {
        fn next_line(&mut self, more: bool) -> Result<Option<Line>> {
            self.asked.push(more);
            Ok(self.lines.next().map(|l| Line::Text(l.into())))
        }
    }

    #[test]
    fn any_source_of_lines_gets_the_blocks_and_is_told_when_one_continues() {
        let mut typed = Typed {
            lines: vec!["hi", "\"\"\"", "a", "b\"\"\"", "bye"].into_iter(),
            asked: Vec::new(),
        };
        let mut messages = Messages {
            source: Box::new(&mut typed),
            limit: 100,
        };
        let got: Vec<Line> = std::iter::from_fn(|| messages.next().unwrap()).collect();
        drop(messages);
        let text = |s: &str| Line::Text(s.into());
        assert_eq!(got, [text("hi"), text("a\nb"), text("bye")]);
        assert_eq!(typed.asked, [false, false, true, true, false, false]);
    }
}
