//! The build-configuration audit on this workspace and on fixture workspaces: the legacy
//! engine's layout fails naming candle-nn and `metal`, its correction passes, and the CUDA
//! variant fails naming `cuda`. Resolving the fixtures needs the crates.io index.

use std::path::Path;
use std::process::{Command, Output};

fn audit(manifest: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["audit", "--manifest-path"])
        .arg(manifest)
        .output()
        .unwrap()
}

/// A copy of a fixture outside this workspace, so Cargo resolves it on its own.
fn fixture(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for file in ["Cargo.toml", "src/main.rs"] {
        std::fs::copy(src.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn this_workspace_passes() {
    let out = audit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_deliberate_cuda_core_only_build_of_this_workspace_is_flagged() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["audit", "--features", "cuda-core-only"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--features cuda-core-only"), "{err}");
    assert!(
        err.contains("candle-core has `cuda` but candle-nn does not"),
        "{err}"
    );
    assert!(
        err.contains("[features]: cuda-core-only = [\"candle-core/cuda\", \"candle-nn/cuda\"]"),
        "{err}"
    );
}

#[test]
fn the_legacy_layout_fails_naming_candle_nn_and_metal_on_macos_only() {
    let dir = fixture("legacy");
    let out = audit(&dir.path().join("Cargo.toml"));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("candle-core has `metal` but candle-nn does not"),
        "{err}"
    );
    assert!(
        err.contains("aarch64-apple-darwin") && err.contains("x86_64-apple-darwin"),
        "{err}"
    );
    assert!(
        !err.contains("linux-gnu") && !err.contains("windows"),
        "only macOS builds get metal: {err}"
    );
    assert!(
        err.contains("[target.'cfg(target_os = \"macos\")'.dependencies]: candle-nn = { version = \"=0.9.1\", features = [\"metal\"] }"),
        "the exact fix: {err}"
    );
}

#[test]
fn the_corrected_layout_passes() {
    let dir = fixture("fixed");
    let out = audit(&dir.path().join("Cargo.toml"));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn cuda_on_candle_core_alone_fails_naming_cuda_on_linux() {
    let dir = fixture("cuda-core-only");
    let out = audit(&dir.path().join("Cargo.toml"));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("candle-core has `cuda` but candle-nn does not"),
        "{err}"
    );
    assert!(err.contains("x86_64-unknown-linux-gnu"), "{err}");
    assert!(!err.contains("apple-darwin"), "{err}");
}
