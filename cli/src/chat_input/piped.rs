//! Lines from a pipe or a file, read with a bound: a line too long for any context is read
//! through in pieces and never held whole, and one that is not UTF-8 is refused.

use std::io::BufRead;

use anyhow::{Context, Result};

use super::{too_long, Line, LineSource};

/// Reads lines of at most `limit` bytes from `input`.
pub struct Lines<R> {
    input: R,
    limit: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R, limit: usize) -> Self {
        Self { input, limit }
    }
}

impl<R: BufRead> LineSource for Lines<R> {
    /// A line longer than the limit is read through to its end, in pieces, and never held
    /// whole.
    fn next_line(&mut self, _more: bool) -> Result<Option<Line>> {
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
            return Ok(Some(too_long(total, self.limit)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], limit: usize) -> Vec<Line> {
        // A tiny buffer, so lines cross reads as long ones do.
        let mut lines = Lines::new(std::io::BufReader::with_capacity(3, input), limit);
        std::iter::from_fn(|| lines.next_line(false).unwrap()).collect()
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
}
