//! Hub model ids through hf-hub's cache, offline, and the legacy engine's flags. A fake cache
//! (the layout hf-hub and the Python libraries share) holds the tiny checkpoint under a real
//! Gemma id, so nothing is downloaded.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::checkpoint_dir;

/// An `HF_HOME` whose cache holds the tiny text checkpoint as `repo` at `main`.
fn fake_hf_home(repo: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let root = home
        .path()
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs/main"), commit).unwrap();
    let snapshot = root.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(checkpoint_dir("tiny-text")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
    }
    home
}

fn gemma3(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(args)
        .env("HF_HOME", home)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap()
}

#[test]
fn hf_hub_cache_names_the_cache_as_the_python_libraries_read_it() {
    let home = fake_hf_home("google/gemma-3-1b-it");
    let elsewhere = tempfile::tempdir().unwrap();
    let args = ["perplexity", "--text", "The river town wakes.", "--cpu"];
    let run = |cache: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gemma3"));
        cmd.args(args)
            .env("HF_HOME", elsewhere.path())
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_TOKEN");
        match cache {
            Some(dir) => cmd.env("HF_HUB_CACHE", dir),
            None => cmd.env_remove("HF_HUB_CACHE"),
        };
        cmd.output().unwrap()
    };
    let found = run(Some(&home.path().join("hub")));
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let missing = run(None);
    assert_eq!(missing.status.code(), Some(1), "HF_HOME's cache is empty");
}

#[test]
fn a_hub_id_loads_from_the_cache_offline() {
    let home = fake_hf_home("google/gemma-3-1b-it");
    let out = gemma3(
        home.path(),
        &[
            "perplexity",
            "--text",
            "The river town wakes.",
            "--device",
            "cpu",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["perplexity"].as_f64().unwrap() > 1.0);
}

#[test]
fn the_legacy_command_line_still_works() {
    let home = fake_hf_home("google/gemma-3-1b-it");
    let out = gemma3(
        home.path(),
        &[
            "--prompt",
            "Name the 16th President of the USA.",
            "--which",
            "3-1b-it",
            "--cpu",
            "--max-tokens",
            "4",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
}

#[test]
fn a_model_missing_from_the_cache_offline_says_what_to_do() {
    let home = fake_hf_home("google/gemma-3-1b-it");
    let out = gemma3(
        home.path(),
        &["generate", "--which", "3-27b-it", "--prompt", "hi"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("google/gemma-3-27b-it") && err.contains("not in the local cache"),
        "{err}"
    );
    assert!(err.contains("--model-dir"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_gated_refusal_explains_the_license_and_the_token() {
    let msg = inference::load::hub::refused("google/gemma-3-1b-it", 403);
    assert!(msg.contains("HTTP 403"));
    assert!(msg.contains("https://huggingface.co/google/gemma-3-1b-it"));
    assert!(msg.contains("HF_TOKEN"));
}

/// A device that cannot open is named before the Hub is asked for anything: here the Hub is
/// offline and the model absent, so any Hub work would fail first with another message.
#[cfg(not(any(feature = "cuda", feature = "cuda-core-only")))]
#[test]
fn an_unusable_device_is_named_before_any_download() {
    let home = tempfile::tempdir().unwrap();
    let out = gemma3(
        home.path(),
        &[
            "generate",
            "--model",
            "google/gemma-3-1b-it",
            "--device",
            "cuda",
            "--prompt",
            "hi",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cuda") && !stderr.contains("Hub"),
        "{stderr}"
    );
}
