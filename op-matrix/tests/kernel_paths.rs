//! The committed goldens against a fresh trace, on every CPU kernel path this machine can run:
//! a machine of another kind (no AVX-512, or aarch64) takes another path, and the goldens must
//! hold there too. This catches a change in the numbers (a Candle upgrade, a kernel change).
//!
//! The path is process-wide, so this file holds one test: no other test shares its process.

use std::path::Path;

use inference::ops::cpu::kernel_path::KernelPath;
use op_matrix::{bless, retrace};

#[test]
fn committed_goldens_hold_on_every_cpu_kernel_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden");
    let sources = bless::Sources::committed(&root);
    let paths = KernelPath::supported();
    assert!(paths.len() >= 2, "{paths:?}: no SIMD path on this CPU");
    let diffs = retrace::check_every_path(&root.join("ops"), &sources).unwrap();
    assert!(
        diffs.is_empty(),
        "run `GEMMA3_CPU_KERNELS=<path> cargo xtask golden` to see why:\n{}",
        diffs.join("\n")
    );
}
