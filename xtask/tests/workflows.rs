//! Every command the CI workflows call exists: each `cargo xtask <command>` is a real
//! subcommand, and each script they run is in the repository and executable.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The workflows' lines, without YAML comments (which may name files that are not run).
fn workflow_lines() -> Vec<String> {
    let dir = root().join(".github/workflows");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .map(str::to_string),
        );
    }
    assert!(!lines.is_empty(), "no workflows in {}", dir.display());
    lines
}

#[test]
fn every_xtask_command_the_workflows_call_exists() {
    let mut seen = 0;
    for line in workflow_lines() {
        let Some(rest) = line.split("cargo xtask ").nth(1) else {
            continue;
        };
        let command = rest.split_whitespace().next().unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([command, "--help"])
            .output()
            .unwrap()
            .status;
        assert!(
            status.success(),
            "`cargo xtask {command}` (in: {line}) is not a command"
        );
        seen += 1;
    }
    assert!(
        seen >= 4,
        "expected the workflows to call cargo xtask, found {seen} calls"
    );
}

#[test]
fn every_script_the_workflows_run_exists_and_is_executable() {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = 0;
    for line in workflow_lines() {
        for word in line.split_whitespace() {
            let word = word.trim_matches(|c| c == '"' || c == '\'');
            if word.starts_with("ci/") || word.starts_with(".ci/") {
                let path = root().join(word);
                let meta = std::fs::metadata(&path)
                    .unwrap_or_else(|_| panic!("{word} (in: {line}) is missing"));
                assert!(
                    meta.permissions().mode() & 0o111 != 0,
                    "{word} is not executable"
                );
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 2,
        "expected the workflows to run .ci/run and ci/ scripts, found {seen}"
    );
}
