//! Standard output, written one way everywhere: a reader that closed the pipe (`gemma3 doctor |
//! head -1`) ends the program quietly, as `cat` and `grep` do, and any other write error (a
//! full disk) is one `error:` line.

use std::fmt;
use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};

/// Standard output was closed by its reader: the program stops, and it is not an error.
#[derive(Debug)]
pub struct ClosedPipe;

impl fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for ClosedPipe {}

/// Writes `text` to standard output and flushes it, so a stream shows each piece at once.
pub fn write(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        written => written.context("writing to standard output"),
    }
}

/// [`write()`] with a newline.
pub fn line(text: &str) -> Result<()> {
    write(&format!("{text}\n"))
}

/// Whether `e` is (or wraps) [`ClosedPipe`].
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ClosedPipe>().is_some()
}

/// A write of `text` inside a generation's token callback: `Ok(false)` when the reader closed
/// the pipe (the generation should stop), the error as the library's otherwise.
pub fn stream(text: &str) -> inference::Result<bool> {
    match write(text) {
        Ok(()) => Ok(true),
        Err(e) if is_closed(&e) => Ok(false),
        Err(e) => Err(inference::Error::Invalid(format!("{e:#}"))),
    }
}
