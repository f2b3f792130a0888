//! Process-wide tuning for the CPU backend, set once at the start of `main`, before any thread
//! is spawned: Candle's worker pool and glibc's allocator.

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
/// heap keeps up to 256 MiB free. Call it first thing in `main`.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 256 << 20;
        // SAFETY: `mallopt` only changes allocator parameters; both values are in range.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if !ok {
            tracing::debug!("glibc refused the allocator thresholds; keeping its defaults");
        }
    }
}
