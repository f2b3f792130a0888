//! `cargo xtask golden [--bless]`.

use anyhow::{Context, Result};
use inference::ops::cpu::kernel_path::KernelPath;

use crate::repo_root;

pub fn run(bless: bool) -> Result<bool> {
    let root = repo_root();
    let dir = root.join("golden/ops");
    let models = op_matrix::bless::committed_models(&root.join("golden"));
    let models: Vec<(&str, &std::path::Path)> =
        models.iter().map(|(n, p)| (*n, p.as_path())).collect();
    if bless {
        let n = op_matrix::bless::bless(&dir, &models).context("blessing the goldens")?;
        println!("wrote {n} cases to {}", dir.display());
        return Ok(true);
    }
    let diffs =
        op_matrix::retrace::check_every_path(&dir, &models).context("checking the goldens")?;
    if diffs.is_empty() {
        let paths: Vec<&str> = KernelPath::supported().iter().map(|p| p.name()).collect();
        println!(
            "goldens in {} match a fresh trace on every CPU kernel path here ({})",
            dir.display(),
            paths.join(", ")
        );
        return Ok(true);
    }
    eprintln!("the goldens differ from a fresh trace:");
    for d in &diffs {
        eprintln!("  {d}");
    }
    eprintln!("review the change, then run `cargo xtask golden --bless`");
    Ok(false)
}
