//! Shared by the CLI tests: the committed tiny checkpoints.

use std::path::{Path, PathBuf};

pub fn checkpoint_dir(preset: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/models")
        .join(preset)
}
