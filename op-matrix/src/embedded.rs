//! The harness's default inputs besides the goldens (which the core embeds), compiled into
//! the crate so that the `op-matrix` binary runs anywhere with no download and no checkout:
//! the tiny checkpoints and the expected-failure lists.

use std::path::PathBuf;

use crate::error::{Error, Result};

macro_rules! model_files {
    ($dir:literal) => {
        [
            (
                "config.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../golden/models/",
                    $dir,
                    "/config.json"
                ))
                .as_slice(),
            ),
            (
                "model.safetensors",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../golden/models/",
                    $dir,
                    "/model.safetensors"
                ))
                .as_slice(),
            ),
            (
                "tokenizer.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../golden/models/",
                    $dir,
                    "/tokenizer.json"
                ))
                .as_slice(),
            ),
        ]
    };
}

pub fn xfail_list(backend: &str) -> &'static str {
    match backend {
        "cuda" => include_str!("../../ci/xfail/cuda.toml"),
        "metal" => include_str!("../../ci/xfail/metal.toml"),
        "metal-paravirtual" => include_str!("../../ci/xfail/metal-paravirtual.toml"),
        _ => include_str!("../../ci/xfail/cpu.toml"),
    }
}

/// Writes the embedded checkpoints into a temporary directory and returns their paths.
pub fn models() -> Result<(tempfile::TempDir, Vec<(&'static str, PathBuf)>)> {
    let root = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut out = Vec::new();
    for (name, files) in [
        ("tiny-text", model_files!("tiny-text")),
        ("tiny-multimodal", model_files!("tiny-multimodal")),
    ] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for (file, bytes) in files {
            let path = dir.join(file);
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        }
        out.push((name, dir));
    }
    Ok((root, out))
}
