//! Ctrl-C. During a generation it stops the generation after the current token, so that the
//! text so far and the stats still come out; at any other time it exits at once.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const GENERATING: u8 = 1;
const INTERRUPTED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(IDLE);

/// The exit status of a process ended by SIGINT, as shells report it.
pub const EXIT_CODE: i32 = 130;

/// Returned by a command that stopped because of Ctrl-C; `main` exits with [`EXIT_CODE`].
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

pub fn install() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        let stopped =
            STATE.compare_exchange(GENERATING, INTERRUPTED, Ordering::SeqCst, Ordering::SeqCst);
        if stopped.is_err() {
            std::process::exit(EXIT_CODE);
        }
    })?;
    Ok(())
}

/// Runs a generation during which Ctrl-C asks it to stop; returns its result and whether
/// Ctrl-C was pressed.
pub fn generating<R>(f: impl FnOnce() -> R) -> (R, bool) {
    STATE.store(GENERATING, Ordering::SeqCst);
    let result = f();
    let interrupted = STATE.swap(IDLE, Ordering::SeqCst) == INTERRUPTED;
    (result, interrupted)
}

/// Whether Ctrl-C was pressed during the current generation.
pub fn requested() -> bool {
    STATE.load(Ordering::SeqCst) == INTERRUPTED
}
