//! The checkpoint's `tokenizer.json`, used exactly as it is: its post-processor decides BOS.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The part of `tokenizer.json` read before the tokenizers crate reads all of it; the rest is
/// skipped without being built.
#[derive(Deserialize)]
struct Head {
    post_processor: Option<Value>,
    model: Option<ModelHead>,
}

/// The one field of the model read up front; a file that sets it is read again whole.
#[derive(Deserialize)]
struct ModelHead {
    continuing_subword_prefix: Option<Value>,
}

/// With a continuing-subword prefix, every BPE merge's second token starts with the prefix and
/// the merged token is in the vocabulary: tokenizers 0.23 cuts the prefix off the second token
/// by its length and copies the result into a buffer as long as the longest token, so a shorter
/// token or a longer merge panics while the file is read (found by `tests/fuzz.rs`).
fn check_merges(model: &Value, prefix: &str) -> std::result::Result<(), String> {
    let vocab = model.get("vocab").and_then(Value::as_object);
    let merges = model.get("merges").and_then(Value::as_array);
    let (Some(vocab), Some(merges)) = (vocab, merges) else {
        return Ok(());
    };
    for merge in merges {
        let pair = match merge {
            Value::String(s) => s.split_once(' '),
            Value::Array(items) => match (items.first(), items.get(1)) {
                (Some(Value::String(a)), Some(Value::String(b))) => Some((a.as_str(), b.as_str())),
                _ => None,
            },
            _ => None,
        };
        let Some((a, b)) = pair.filter(|(a, b)| vocab.contains_key(*a) && vocab.contains_key(*b))
        else {
            continue;
        };
        let merged = b.strip_prefix(prefix).map(|rest| format!("{a}{rest}"));
        if !merged.is_some_and(|m| vocab.contains_key(&m)) {
            return Err(format!(
                "the BPE merge `{a} {b}` does not continue with the prefix `{prefix}` into a token \
                 of the vocabulary; re-download the file"
            ));
        }
    }
    Ok(())
}

/// Every special token that a `TemplateProcessing` post-processor's templates place is in its
/// table, with as many ids as tokens: tokenizers 0.23 reads such a file without a word and
/// panics at the first encoding (found by `tests/fuzz.rs`).
fn check_templates(v: &Value) -> std::result::Result<(), String> {
    match v {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
                let table = map.get("special_tokens").and_then(Value::as_object);
                for key in ["single", "pair"] {
                    let pieces = map.get(key).and_then(Value::as_array).into_iter().flatten();
                    for piece in pieces {
                        let Some(id) = piece.pointer("/SpecialToken/id").and_then(Value::as_str)
                        else {
                            continue;
                        };
                        let entry = table.and_then(|t| t.get(id)).ok_or_else(|| {
                            format!(
                                "the post_processor's `{key}` template places `{id}`, which its \
                                 special_tokens lack; re-download the file"
                            )
                        })?;
                        let len = |k: &str| entry.get(k).and_then(Value::as_array).map(Vec::len);
                        if len("ids").is_none() || len("ids") != len("tokens") {
                            return Err(format!(
                                "the post_processor's special token `{id}` needs as many ids as \
                                 tokens; re-download the file"
                            ));
                        }
                    }
                }
            }
            map.values().try_for_each(check_templates)
        }
        Value::Array(items) => items.iter().try_for_each(check_templates),
        _ => Ok(()),
    }
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// A tokenizer from the bytes of the `tokenizer.json` at `path`.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let refuse = |message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let head: Head = serde_json::from_slice(bytes).map_err(|e| refuse(e.to_string()))?;
        if let Some(post) = &head.post_processor {
            check_templates(post).map_err(refuse)?;
        }
        let prefix = head.model.and_then(|m| m.continuing_subword_prefix);
        if let Some(prefix) = prefix
            .as_ref()
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            let whole: Value = serde_json::from_slice(bytes).map_err(|e| refuse(e.to_string()))?;
            if let Some(model) = whole.get("model") {
                check_merges(model, prefix).map_err(refuse)?;
            }
        }
        // tokenizers indexes past a buffer on some hostile BPE files (a merge longer than every
        // token) where it should refuse them.
        let inner = crate::process::contain(|| tokenizers::Tokenizer::from_bytes(bytes))
            .map_err(|panic| refuse(format!("the tokenizers library failed reading it: {panic}")))?
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Self::new(inner, path))
    }

    /// A tokenizer built in memory, with the file it came from for its errors.
    pub(crate) fn new(inner: tokenizers::Tokenizer, path: &Path) -> Self {
        Self {
            inner,
            path: path.to_path_buf(),
        }
    }

    /// The number of tokens, added ones included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Token ids of `text`, with the special tokens the post-processor adds (Gemma: `<bos>`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| self.error(e))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.error(e))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
