//! Which instruction set this crate's own CPU kernels use: the best one the CPU has, or the one
//! that `GEMMA3_CPU_KERNELS` (or [`force`]) names, so that tests, benchmarks and a user chasing
//! a wrong number can run every path a machine has.
//!
//! The choice is process-wide and read on every kernel call (one relaxed atomic load), so a
//! test can switch paths between runs of the model.

use std::sync::atomic::{AtomicU8, Ordering};

pub use gemma3_interface::kernel_path::{KernelPath, ENV};

use crate::error::{Error, Result};

const UNSET: u8 = u8::MAX;
static ACTIVE: AtomicU8 = AtomicU8::new(UNSET);

/// The path the kernels take now: the forced one, else `GEMMA3_CPU_KERNELS`, else the best.
pub fn active() -> KernelPath {
    let code = ACTIVE.load(Ordering::Relaxed);
    if let Some(&path) = KernelPath::ALL.get(usize::from(code)) {
        return path;
    }
    let path = match from_env() {
        Ok(forced) => forced.unwrap_or_else(KernelPath::best),
        Err(e) => {
            tracing::warn!("{e}; using {}", KernelPath::best());
            KernelPath::best()
        }
    };
    ACTIVE.store(path.code(), Ordering::Relaxed);
    path
}

/// The path `GEMMA3_CPU_KERNELS` names, if set; an error if it names no path or one this CPU
/// cannot run. Binaries call this at start so that a bad value stops them with a clear message.
pub fn from_env() -> Result<Option<KernelPath>> {
    let Ok(value) = std::env::var(ENV) else {
        return Ok(None);
    };
    if value.trim().is_empty() {
        return Ok(None);
    }
    let path: KernelPath = value
        .parse()
        .map_err(|e: gemma3_interface::named::UnknownName| {
            Error::Invalid(format!("{ENV}={value}: {e}"))
        })?;
    check(path).map_err(|e| Error::Invalid(format!("{ENV}={value}: {e}")))?;
    Ok(Some(path))
}

/// Makes every later kernel call take `path`; an error if this CPU cannot run it.
pub fn force(path: KernelPath) -> Result<()> {
    check(path)?;
    ACTIVE.store(path.code(), Ordering::Relaxed);
    Ok(())
}

fn check(path: KernelPath) -> Result<()> {
    if path.is_supported() {
        return Ok(());
    }
    let here: Vec<&str> = KernelPath::supported().iter().map(|p| p.name()).collect();
    Err(Error::Invalid(format!(
        "the `{path}` kernels need {}, which this CPU lacks; it can run {}",
        path.requires(),
        here.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_the_cpu_lacks_is_refused_with_what_it_needs() {
        let missing = KernelPath::ALL.into_iter().find(|p| !p.is_supported());
        let missing = missing.expect("no CPU has both x86 and aarch64 paths");
        let err = check(missing).unwrap_err().to_string();
        assert!(err.contains(missing.requires()), "{err}");
        assert!(err.contains("portable"), "{err}");
    }
}
