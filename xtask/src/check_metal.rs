//! `cargo xtask check-metal`: type-checks the Metal build on Linux, where no Metal exists.
//!
//! Two things stand in the way, and neither needs a copy of anyone's code in the repo:
//! - objc2 and block2 need an Objective-C runtime to target off Apple platforms: the inference
//!   crate enables their `gnustep-2-1` feature for non-Apple targets (not objc2-foundation's,
//!   which breaks `NSURL::from_file_path` in candle-core).
//! - objc2-metal links the Metal framework unconditionally. A copy of its registry source is
//!   patched at check time under `target/`, to link only on Apple targets, and passed with
//!   `--config patch.crates-io...`. Nothing is linked by a check anyway.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::audit::resolve::{metadata_with, output};
use crate::repo_root;

const LINK: &str = "#[link(name = \"Metal\", kind = \"framework\")]";
const APPLE_ONLY: &str =
    "#[cfg_attr(target_vendor = \"apple\", link(name = \"Metal\", kind = \"framework\"))]";

pub fn run() -> Result<bool> {
    let root = repo_root();
    let work = root.join("target/check-metal");
    let patched = patch_objc2_metal(root, &work)?;
    let lock = root.join("Cargo.lock");
    // The patch rewrites Cargo.lock's entry for objc2-metal; the committed lock stays as it was.
    let saved = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "check",
            "-p",
            "inference",
            "-p",
            "op-matrix",
            "--all-targets",
        ])
        .args(["--features", "inference/metal,op-matrix/metal"])
        .arg("--config")
        .arg(format!(
            "patch.crates-io.objc2-metal.path={:?}",
            patched.display().to_string()
        ))
        .arg("--target-dir")
        .arg(work.join("build"))
        .status()
        .context("running cargo check");
    std::fs::write(&lock, saved).with_context(|| format!("restoring {}", lock.display()))?;
    let status = status?;
    if status.success() {
        println!(
            "check-metal: ok: the workspace type-checks with `metal` (nothing was linked or run)"
        );
    }
    Ok(status.success())
}

/// Copies objc2-metal's registry source into `work` and makes its framework link Apple-only.
fn patch_objc2_metal(root: &Path, work: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut fetch = Command::new(&cargo);
    fetch.current_dir(root).args(["fetch", "--quiet"]);
    output(fetch, "cargo fetch")?;
    let meta = metadata_with(
        &root.join("Cargo.toml"),
        &[
            "--features",
            "inference/metal",
            "--filter-platform",
            "aarch64-apple-darwin",
        ],
    )?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "objc2-metal")
        .and_then(|p| p["manifest_path"].as_str())
        .context(
            "objc2-metal is not in the metal build; has candle-core changed its Metal bindings?",
        )?;
    let src = Path::new(manifest)
        .parent()
        .context("objc2-metal's manifest has no folder")?;
    let dest = work.join("objc2-metal");
    if dest.exists() {
        std::fs::remove_dir_all(&dest).with_context(|| format!("clearing {}", dest.display()))?;
    }
    copy_dir(src, &dest)?;
    let file = dest.join("src/generated/mod.rs");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    if text.matches(LINK).count() != 1 {
        bail!(
            "{} no longer has exactly one `{LINK}`; update check-metal",
            file.display()
        );
    }
    std::fs::write(&file, text.replace(LINK, APPLE_ONLY))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(dest)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying to {}", target.display()))?;
        }
    }
    Ok(())
}
