//! Lines typed at a terminal, through rustyline: editing, and the session's history on the
//! arrow keys. The prompt and the editing go to the terminal itself, never to standard
//! output, which carries only the replies.

use anyhow::{Context, Result};
use rustyline::config::{Behavior, Config};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::{too_long, Line, LineSource};
use crate::interrupt::Interrupted;

pub struct Terminal {
    editor: DefaultEditor,
    limit: usize,
}

impl Terminal {
    pub fn new(limit: usize) -> Result<Self> {
        let config = Config::builder().behavior(Behavior::PreferTerm).build();
        let editor = DefaultEditor::with_config(config)
            .context("setting up line editing on the terminal")?;
        Ok(Self { editor, limit })
    }
}

impl LineSource for Terminal {
    fn next_line(&mut self, more: bool) -> Result<Option<Line>> {
        let prompt = if more { "... " } else { "> " };
        match self.editor.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    self.editor
                        .add_history_entry(line.as_str())
                        .context("adding to the history")?;
                }
                if line.len() > self.limit {
                    return Ok(Some(too_long(line.len(), self.limit)));
                }
                Ok(Some(Line::Text(line)))
            }
            // Ctrl-D, as the end of a pipe.
            Err(ReadlineError::Eof) => Ok(None),
            // Ctrl-C at the prompt quits, as SIGINT does outside a generation; the line editor
            // reads it as a key, so it never reaches the signal handler.
            Err(ReadlineError::Interrupted) => Err(Interrupted.into()),
            Err(e) => Err(e).context("reading the terminal"),
        }
    }
}
