//! A real Gemma-style tokenizer: SentencePiece-like BPE with byte fallback, spaces as `▁`,
//! and a post-processor that adds `<bos>`. The merges are learned from a small embedded corpus
//! by the `tokenizers` trainer, so the files are genuine and load in any Hugging Face stack.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::Trainer;

pub const CORPUS: &str = include_str!("corpus.txt");

/// Special tokens at the front of the vocabulary, in id order.
pub const SPECIALS: [&str; 10] = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
];

pub fn special_id(token: &str) -> u32 {
    SPECIALS
        .iter()
        .position(|&s| s == token)
        .expect("a listed special token") as u32
}

/// Builds `tokenizer.json` with exactly `vocab_size` entries.
pub fn tokenizer_json(vocab_size: usize) -> Result<String> {
    let fixed = SPECIALS.len() + 256;
    if vocab_size <= fixed {
        bail!("vocab_size {vocab_size} leaves no room for learned tokens (need more than {fixed})");
    }
    let (learned, merges) = train(vocab_size - fixed)?;

    let mut vocab: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    vocab.extend(learned);
    vocab.truncate(vocab_size);
    while vocab.len() < vocab_size {
        // The trainer stops early on a small corpus; pad with unused tokens like Gemma's.
        vocab.push(format!("<unused{}>", vocab.len()));
    }
    let vocab_map: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let bos = special_id("<bos>");
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<bos>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}
            ],
            "pair": [
                {"SpecialToken": {"id": "<bos>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [bos], "tokens": ["<bos>"]}}
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab_map, "merges": merges
        }
    });
    let text = serde_json::to_string_pretty(&doc)?;
    // Prove the file is a tokenizer that round-trips text before anyone depends on it.
    let tok = tokenizers::Tokenizer::from_bytes(text.as_bytes()).map_err(anyhow::Error::msg)?;
    let sample = "The clockmaker smiles: ünïcode → bytes.";
    let enc = tok.encode(sample, true).map_err(anyhow::Error::msg)?;
    if enc.get_ids().first() != Some(&bos) {
        bail!("generated tokenizer does not start with <bos>");
    }
    let back = tok
        .decode(enc.get_ids(), true)
        .map_err(anyhow::Error::msg)?;
    if back != sample {
        bail!("generated tokenizer does not round-trip: {back:?}");
    }
    Ok(text)
}

/// Learned tokens in id order, and the merges in rank order.
fn train(size: usize) -> Result<(Vec<String>, Value)> {
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(size)
        .min_frequency(2)
        .show_progress(false)
        .build();
    let lines: Vec<&str> = CORPUS.lines().collect();
    trainer
        .feed(lines.iter(), |line| {
            Ok(line
                .split(' ')
                .enumerate()
                .map(|(i, w)| {
                    if i == 0 {
                        w.to_string()
                    } else {
                        format!("\u{2581}{w}")
                    }
                })
                .collect())
        })
        .map_err(anyhow::Error::msg)?;
    let mut model = BPE::default();
    trainer.train(&mut model).map_err(anyhow::Error::msg)?;
    let value = serde_json::to_value(&model)?;
    let vocab: HashMap<String, u64> =
        serde_json::from_value(value["vocab"].clone()).context("trained vocab")?;
    let mut learned: Vec<(String, u64)> = vocab.into_iter().collect();
    learned.sort_by_key(|(_, id)| *id);
    Ok((
        learned.into_iter().map(|(t, _)| t).collect(),
        value["merges"].clone(),
    ))
}
