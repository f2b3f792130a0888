//! `ARCHITECTURE.md` names real paths: every backticked path under a top-level folder of the
//! repository (or a root file) exists, so the map cannot drift from the tree unnoticed.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The backticked spans of `text` that start with a top-level entry of the repository.
fn named_paths(text: &str) -> Vec<String> {
    let top: Vec<String> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".git")
        .collect();
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| !span.contains(' '))
        .filter(|span| {
            let first = span.split('/').next().unwrap_or_default();
            top.iter().any(|t| t == first)
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_path_the_architecture_page_names_exists() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let paths = named_paths(&text);
    assert!(
        paths.len() >= 40,
        "only {} paths found: {paths:?}",
        paths.len()
    );
    let missing: Vec<&String> = paths.iter().filter(|p| !root().join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn a_path_that_does_not_exist_is_found() {
    let paths = named_paths("see `inference/src/nowhere.rs` and `cargo test`, not `mod.rs`");
    assert_eq!(paths, ["inference/src/nowhere.rs"]);
    assert!(!root().join(&paths[0]).exists());
}
