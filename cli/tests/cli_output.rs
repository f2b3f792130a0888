//! Standard output that cannot be written: a reader that closed the pipe ends every command
//! quietly with exit 0, as `cat` and `grep` do; a full disk is one `error:` line and exit 1.

mod common;

use std::process::{Command, Output, Stdio};

use common::checkpoint_dir;

/// The commands that write to standard output: whole documents, and a stream of tokens.
fn commands() -> Vec<Vec<String>> {
    let dir = checkpoint_dir("tiny-text").display().to_string();
    let model = ["--model-dir".to_string(), dir, "--cpu".into()];
    let text = ["--text".to_string(), "The clockmaker opens his shop".into()];
    let generate = [
        "--prompt",
        "hi",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--raw",
    ];
    vec![
        vec!["doctor".into()],
        vec!["doctor".into(), "--json".into()],
        [&["perplexity".into()], &model[..], &text].concat(),
        [&["perplexity".into(), "--json".into()], &model[..], &text].concat(),
        [
            &["generate".to_string()][..],
            &model,
            &generate.map(String::from),
        ]
        .concat(),
    ]
}

fn run(args: &[String], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(args)
        .stdout(stdout)
        .output()
        .unwrap()
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    for args in commands() {
        // The reader is gone before the command starts, so its first write meets the closed
        // pipe, whatever the timing.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run(&args, writer.into());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_one_error_line() {
    for args in commands() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run(&args, full.into());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(
            errors[0].contains("writing to standard output") && errors[0].contains("No space left"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A run on the tiny checkpoint with its standard error piped, under `env`.
fn logged(env: &[(&str, &str)]) -> String {
    let dir = checkpoint_dir("tiny-text");
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args([
            "generate",
            "--cpu",
            "--raw",
            "--prompt",
            "hi",
            "--max-tokens",
            "1",
        ])
        .arg("--model-dir")
        .arg(dir)
        .env_remove("GEMMA3_LOG")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn logs_follow_rust_log_unless_gemma3_log_is_set_and_carry_no_colour_into_a_pipe() {
    let quiet = logged(&[]);
    assert!(!quiet.contains("preflight on"), "{quiet}");
    let rust_log = logged(&[("RUST_LOG", "info")]);
    assert!(rust_log.contains("preflight on cpu"), "{rust_log}");
    assert!(
        !rust_log.contains('\u{1b}'),
        "colour codes in a pipe: {rust_log:?}"
    );
    let both = logged(&[("RUST_LOG", "info"), ("GEMMA3_LOG", "warn")]);
    assert!(!both.contains("preflight on"), "{both}");
}

#[test]
fn completions_are_printed_for_each_shell_and_an_unknown_one_is_refused() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions".into(), shell.into()], Stdio::piped());
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("gemma3") && script.contains("max-tokens"),
            "{shell}: {script}"
        );
    }
    let out = run(&["completions".into(), "tcsh".into()], Stdio::piped());
    assert_eq!(out.status.code(), Some(2));
}
