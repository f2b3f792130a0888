//! `gemma3 perplexity` on the tiny checkpoint against transformers' scores of the same file.

mod common;

use std::process::Command;

use common::checkpoint_dir;
use serde_json::Value;

fn reference() -> Value {
    let path = checkpoint_dir("tiny-text").join("../../reference/tiny-text/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn perplexity(extra: &[&str]) -> Value {
    let dir = checkpoint_dir("tiny-text");
    let file = dir.join("../../reference/long.txt");
    let mut args = vec![
        "perplexity",
        "--model-dir",
        dir.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--cpu",
        "--dtype",
        "f32",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ppl(doc: &Value) -> f64 {
    doc["perplexity"].as_f64().unwrap()
}

#[test]
fn a_file_scores_as_transformers_scores_it() {
    let want = reference()["long"]["perplexity"].as_f64().unwrap();
    let doc = perplexity(&[]);
    assert_eq!(doc["token_ids"], reference()["long"]["token_ids"]);
    let rel = (ppl(&doc) - want).abs() / want;
    assert!(
        rel < 1e-5,
        "perplexity {} vs transformers {want}",
        ppl(&doc)
    );
}

#[test]
fn windows_score_every_token_once_with_less_context() {
    let full = perplexity(&[]);
    let n = full["logprobs"].as_array().unwrap().len();
    let wide = perplexity(&["--window", "1024"]);
    assert!(
        (ppl(&wide) - ppl(&full)).abs() / ppl(&full) < 1e-9,
        "one window is the whole text"
    );
    for (window, stride) in [("256", "128"), ("300", "200")] {
        let doc = perplexity(&["--window", window, "--stride", stride]);
        assert_eq!(
            doc["logprobs"].as_array().unwrap().len(),
            n,
            "{window}/{stride}"
        );
        assert_ne!(
            ppl(&doc),
            ppl(&full),
            "{window}/{stride}: less context, other scores"
        );
    }
    let half = perplexity(&["--window", "256"]);
    let explicit = perplexity(&["--window", "256", "--stride", "128"]);
    assert_eq!(
        ppl(&half),
        ppl(&explicit),
        "the stride defaults to half the window"
    );
}
