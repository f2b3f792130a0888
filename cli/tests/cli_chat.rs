//! `gemma3 chat` with piped stdin: turns reuse the KV cache, /reset and /exit work, and a
//! conversation that outgrows the context drops its oldest exchanges instead of failing.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::checkpoint_dir;

fn chat(dir: &Path, input: impl AsRef<[u8]>, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args([
            "chat",
            "--model-dir",
            dir.to_str().unwrap(),
            "--device",
            "cpu",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_ref())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The `(new, cached)` prompt token counts of each turn, from the stats lines.
fn turns(stderr: &str) -> Vec<(usize, usize)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("(prompt "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].parse().unwrap(), words[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn later_turns_reuse_the_cache_and_reset_starts_over() {
    // One-token greedy replies are never fed back, so the cache holds exactly the rendered
    // prompt, and the next turn's rendering must extend it.
    let input = "Hello there\nWhat is the river?\n/reset\nAnd the clock?\n/exit\nnever read\n";
    let greedy = ["--max-tokens", "1", "--temperature", "0"];
    let out = chat(&checkpoint_dir("tiny-text"), input, &greedy);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 3, "three turns before /exit: {stderr}");
    assert_eq!(t[0].1, 0);
    assert_eq!(
        t[1].1, t[0].0,
        "the second turn reuses the first prompt: {stderr}"
    );
    assert_eq!(t[2].1, 0, "after /reset nothing is reused: {stderr}");
    assert!(stderr.contains("(conversation reset)"));
}

/// The tiny text checkpoint with a context of 96 positions.
fn short_context() -> tempfile::TempDir {
    common::edited_copy(
        "tiny-text",
        "\"max_position_embeddings\": 1024",
        "\"max_position_embeddings\": 96",
    )
}

/// A message that does not fit, or a line that is not UTF-8, gets an error line; the session
/// goes on with its history whole (the next turn reuses the first one's cache).
#[test]
fn a_message_that_cannot_be_sent_leaves_the_conversation_as_it_was() {
    let dir = short_context();
    let long = "the river town wakes before the sun ".repeat(40);
    let input = [
        b"Hello there\n".as_slice(),
        long.as_bytes(),
        b"\n\xff\xfe broken\n",
        b"What is the river?\n",
    ]
    .concat();
    let out = chat(dir.path(), input, &["--max-tokens", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(
        errors[0].contains("context holds 96") && errors[0].contains("--max-tokens"),
        "{stderr}"
    );
    assert!(errors[1].contains("not UTF-8"), "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 2, "{stderr}");
    assert_eq!(t[1].1, t[0].0, "the history survived: {stderr}");
    assert!(!stderr.contains("dropped the"), "{stderr}");
}

#[test]
fn a_full_context_drops_the_oldest_exchanges() {
    let dir = short_context();
    let input = "The river town wakes.\nThe bakers light the ovens.\nThe ferry bell rings twice.\nThe carts roll over the bridge.\n";
    let out = chat(dir.path(), input, &["--max-tokens", "8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(turns(&stderr).len(), 4, "{stderr}");
    assert!(stderr.contains("dropped the"), "{stderr}");
}

#[test]
fn a_checkpoint_without_a_chat_template_is_refused_with_the_alternative() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            checkpoint_dir("tiny-text").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    let out = chat(dir.path(), "hi\n", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no chat template") && stderr.contains("--raw"),
        "{stderr}"
    );
}

#[test]
fn the_system_prompt_and_sampling_flags_reach_the_conversation() {
    let dir = checkpoint_dir("tiny-text");
    let first_prompt = |extra: &[&str]| {
        let out = chat(
            &dir,
            "Hello there\n",
            &[&["--max-tokens", "6"][..], extra].concat(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        (
            turns(&stderr)[0].0,
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (plain, _) = first_prompt(&[]);
    let (with_system, _) = first_prompt(&["--system", "Answer in one word."]);
    assert!(with_system > plain, "{with_system} vs {plain}");
    let hot = ["--temperature", "5", "--seed"];
    let (_, a) = first_prompt(&[&hot[..], &["7"]].concat());
    let (_, b) = first_prompt(&[&hot[..], &["7"]].concat());
    let (_, c) = first_prompt(&[&hot[..], &["8"]].concat());
    assert_eq!(a, b, "same seed, same reply");
    assert_ne!(a, c, "another seed, another reply");
}

#[test]
fn a_block_between_triple_quotes_is_one_turn() {
    let dir = checkpoint_dir("tiny-text");
    let pasted = "\"\"\"\nThe clockmaker opens his shop.\nThe river town wakes.\n\"\"\"\nHello\n";
    let out = chat(&dir, pasted, &["--max-tokens", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 2, "the block, then Hello: {stderr}");
    // The block's two lines are one message, with more tokens than either line alone.
    let alone = chat(
        &dir,
        "The clockmaker opens his shop.\n",
        &["--max-tokens", "1"],
    );
    let alone = turns(&String::from_utf8_lossy(&alone.stderr));
    assert!(t[0].0 > alone[0].0, "{t:?} vs {alone:?}");
}

#[test]
fn a_reply_rendered_back_otherwise_keeps_the_cache_up_to_where_it_differs() {
    // A reply cut at --max-tokens is closed by the template, and its last token was never
    // fed: the history rendered back differs from what the cache holds after the prompt.
    let input = "Hello there\nWhat is the river?\nAnd the clock?\n";
    let args = ["--max-tokens", "4", "--temperature", "0"];
    let out = chat(&checkpoint_dir("tiny-text"), input, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t = turns(&stderr);
    assert_eq!(t.len(), 3, "{stderr}");
    for turn in 1..3 {
        let (fed, cached) = (t[turn - 1].0, t[turn - 1].1);
        assert!(
            t[turn].1 >= cached + fed,
            "turn {turn} reuses at least the prompts before its reply: {stderr}"
        );
    }
}
