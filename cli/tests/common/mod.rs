//! Shared by the CLI tests: the committed tiny checkpoints.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn checkpoint_dir(preset: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/models")
        .join(preset)
}

/// A copy of a tiny checkpoint, to edit.
pub fn copy(preset: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(checkpoint_dir(preset)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// A copy of a tiny checkpoint whose `config.json` has `from` replaced by `to`.
pub fn edited_copy(preset: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = copy(preset);
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(from), "{preset}'s config.json has no {from}");
    std::fs::write(&config, text.replace(from, to)).unwrap();
    dir
}
