//! Process-wide settings, made once at the start of `main` before any thread is spawned:
//! Candle's worker pool, glibc's allocator, and the panic hook's silence over panics that
//! [`contain`] turns into errors.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// `f`'s result, or the message of its panic: for a library that panics on input it should
/// refuse (tokenizers 0.23 does on some BPE files). Where [`quiet_contained_panics`] ran, the
/// panic prints nothing; the caller's error says what went wrong.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CONTAINING.replace(true);
    // Unwind safety: callers pass code whose state is dropped with the panic (a parser
    // building a value from bytes), so nothing half-made is seen afterwards.
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.set(was);
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// The message a panic carried: its `&str` or `String` payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Keeps the panic hook from printing the panics that [`contain`] catches; every other panic
/// prints as before. Call it first thing in `main`.
pub fn quiet_contained_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CONTAINING.with(Cell::get) {
            previous(info)
        }
    }));
}

/// Makes Candle's CPU workers sleep as soon as an element-wise op is done, unless the user set
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` already. Candle 0.11 runs large element-wise ops on a pool
/// of its own whose workers spin 25,000 times after each op before they sleep; on a machine
/// with few cores that spinning takes a core from the `linear` kernels that follow on rayon's
/// threads (a 1B prefill on 2 cores: 138 tok/s spinning, 158 parking). Call it first thing in
/// `main`, before any thread is spawned: it sets an environment variable.
pub fn park_idle_candle_workers() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "0");
    }
}

/// Keeps the memory that CPU ops free inside the process for the next op (glibc only; other
/// allocators keep it already). glibc returns blocks from 128 KiB up to a moving threshold
/// straight to the kernel, so each op's megabyte-sized activations come back as fresh pages
/// that must be faulted in and zeroed: a 512-token 1B prefill on 2 cores spent about a tenth
/// of its time so. Blocks up to glibc's ceiling of 32 MiB now come from the heap, and the
/// heap keeps up to 256 MiB free. All threads share one heap: each of the pool's threads
/// would otherwise get a heap of its own, each keeping its free memory (a Q4_0 1B's peak
/// memory was 899 MiB so, 857 MiB with one). Call it first thing in `main`.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 256 << 20;
        // SAFETY: `mallopt` only changes allocator parameters; both values are in range.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
        };
        if !ok {
            tracing::debug!("glibc refused the allocator settings; keeping its defaults");
        }
    }
}
