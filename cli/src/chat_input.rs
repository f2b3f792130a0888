//! The messages of `chat`'s input, read with a bound: a line too long for any context, or one
//! that is not UTF-8, is refused on its own and the conversation goes on. A message is a line,
//! or the lines of a block between `"""` marks, as ollama reads them (for pasted text).

use std::io::BufRead;

use anyhow::{Context, Result};

/// One line of input.
#[derive(Debug, PartialEq)]
pub enum Line {
    Text(String),
    /// A line that cannot be a message, with why.
    Refused(String),
}

/// Reads lines of at most `limit` bytes from `input`.
pub struct Lines<R> {
    input: R,
    limit: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R, limit: usize) -> Self {
        Self { input, limit }
    }

    /// The next line without its line ending; `None` at the end of the input. A longer line
    /// is read through to its end, in pieces, and never held whole.
    pub fn next_line(&mut self) -> Result<Option<Line>> {
        let mut line = Vec::new();
        let mut total = 0usize;
        loop {
            let buf = self.input.fill_buf().context("reading standard input")?;
            if buf.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            // The piece up to the line's end, and the bytes that consumes (the newline too).
            let (piece, used, ended) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            total = total.saturating_add(piece.len());
            if total <= self.limit {
                line.extend_from_slice(piece);
            }
            self.input.consume(used);
            if ended {
                break;
            }
        }
        if total > self.limit {
            return Ok(Some(Line::Refused(format!(
                "a line of {total} bytes is longer than any message this model's context can hold ({} bytes at most); nothing was sent",
                self.limit
            ))));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(match String::from_utf8(line) {
            Ok(text) => Line::Text(text),
            Err(e) => Line::Refused(format!(
                "the line is not UTF-8 text (its byte {} is not); nothing was sent",
                e.utf8_error().valid_up_to() + 1
            )),
        }))
    }
}

/// What opens and closes a message of several lines.
const BLOCK: &str = "\"\"\"";

impl<R: BufRead> Lines<R> {
    /// The next message: a line, or a `"""` block's lines joined by newlines (the text on the
    /// marks' own lines included); `None` at the end of the input, which also closes a block.
    pub fn next_message(&mut self) -> Result<Option<Line>> {
        let first = match self.next_line()? {
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
            let line = match self.next_line()? {
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

    fn read_all(input: &[u8], limit: usize) -> Vec<Line> {
        // A tiny buffer, so lines cross reads as long ones do.
        let mut lines = Lines::new(std::io::BufReader::with_capacity(3, input), limit);
        std::iter::from_fn(|| lines.next_line().unwrap()).collect()
    }

    #[test]
    fn lines_come_whole_and_the_bad_ones_alone() {
        let input = b"hello\r\nthis line is too long\n\xff\xfe\nlast";
        let lines = read_all(input, 10);
        assert_eq!(lines[0], Line::Text("hello".into()));
        assert!(matches!(&lines[1], Line::Refused(why) if why.contains("21 bytes")));
        assert!(matches!(&lines[2], Line::Refused(why) if why.contains("not UTF-8")));
        assert_eq!(lines[3], Line::Text("last".into()));
        assert_eq!(lines.len(), 4);
        assert_eq!(read_all(b"", 10), []);
        assert_eq!(read_all(b"\n", 10), [Line::Text(String::new())]);
    }

    fn messages(input: &[u8], limit: usize) -> Vec<Line> {
        let mut lines = Lines::new(std::io::BufReader::with_capacity(3, input), limit);
        std::iter::from_fn(|| lines.next_message().unwrap()).collect()
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
}
