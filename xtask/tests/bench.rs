//! `cargo xtask bench`'s process helper: a child's peak RSS is its own, and its exit status
//! comes back. (The rest of the bench is unit-tested inside xtask; the bench itself is not run
//! here: it downloads and builds the peers.)

use std::process::Command;

#[test]
fn rusage_exec_reports_the_childs_own_peak_rss_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rss");
    // dd holds a 64 MiB block in memory.
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("rusage-exec")
        .arg(&out)
        .args(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=2"])
        .status()
        .unwrap();
    assert!(status.success());
    let kib: u64 = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((64 * 1024..200 * 1024).contains(&kib), "{kib} KiB");

    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("rusage-exec")
        .arg(&out)
        .args(["sh", "-c", "exit 3"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}
