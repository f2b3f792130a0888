//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`), read into the Hugging Face tokenizer
//! that Gemma's `tokenizer.json` describes, and written from one.
//!
//! Gemma's vocabulary is SentencePiece BPE (`tokenizer.ggml.model` = `llama`): pieces with
//! scores and no merge list. SentencePiece merges, at each step, the adjacent pair whose
//! concatenation is the highest-scoring piece. A BPE whose merges are every split of every
//! piece into two pieces, ranked by that piece's score, merges the same pairs in the same
//! order, which is how transformers converts such a vocabulary. A file that also lists
//! `tokenizer.ggml.merges` (this project's writer keeps a `tokenizer.json`'s own merges there,
//! so that a tokenizer not trained as SentencePiece reads back exact) uses that list.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::bpe::{Vocab as BpeVocab, BPE};
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::Sequence as NormalizerSequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper};

use super::{as_u64, GgufFile, BOS_ID, EOS_ID, TOKENS};
use crate::error::{Error, Result};
use crate::text::tokenizer::Tokenizer;

/// `tokenizer.ggml.model` for SentencePiece vocabularies, Gemma's.
const SENTENCEPIECE: &str = "llama";

/// SentencePiece's piece types, as `tokenizer.ggml.token_type` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

impl Piece {
    fn of(code: u64) -> Option<Self> {
        [
            Self::Normal,
            Self::Unknown,
            Self::Control,
            Self::UserDefined,
            Self::Unused,
            Self::Byte,
        ]
        .into_iter()
        .find(|p| *p as u64 == code)
    }

    /// Pieces matched in the text before the model sees it, as llama.cpp matches them.
    fn is_added(self) -> bool {
        matches!(self, Self::Unknown | Self::Control | Self::UserDefined)
    }
}

/// A vocabulary as GGUF stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<Piece>,
    merges: Option<Vec<(String, String)>>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// SentencePiece's dummy prefix: a `▁` before the text. Gemma's has none, but llama.cpp
    /// adds it to a SentencePiece vocabulary unless the file says not to.
    add_space_prefix: bool,
}

impl Vocab {
    /// The vocabulary of `gguf`; `None` if the file has none.
    pub fn read(gguf: &GgufFile) -> Result<Option<Self>> {
        let Some(model) = gguf.opt_string("tokenizer.ggml.model")? else {
            return Ok(None);
        };
        if model != SENTENCEPIECE {
            return Err(gguf.error(format!(
                "holds a `{model}` tokenizer; Gemma 3's is SentencePiece (`{SENTENCEPIECE}`)"
            )));
        }
        let string = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let tokens = gguf
            .opt_array_of(TOKENS, "strings", string)?
            .ok_or_else(|| gguf.missing(TOKENS))?;
        let n = tokens.len();
        let scores = gguf
            .opt_array_of("tokenizer.ggml.scores", "f32", |v| match v {
                Value::F32(x) => Some(*x),
                _ => None,
            })?
            .unwrap_or_else(|| vec![0.0; n]);
        let types = gguf
            .opt_array_of("tokenizer.ggml.token_type", "a token type", |v| {
                as_u64(v).and_then(Piece::of)
            })?
            .unwrap_or_else(|| vec![Piece::Normal; n]);
        if scores.len() != n || types.len() != n {
            return Err(gguf.error(format!(
                "has {n} tokens but {} scores and {} token types",
                scores.len(),
                types.len()
            )));
        }
        let merges = gguf
            .opt_array_of("tokenizer.ggml.merges", "strings", string)?
            .map(|merges| {
                merges
                    .iter()
                    .map(|m| {
                        split_merge(m)
                            .ok_or_else(|| gguf.error(format!("merge `{m}` is not two tokens")))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let id = |key: &str| -> Result<Option<u32>> {
            match gguf.opt_usize(key)? {
                Some(id) if id >= n => Err(gguf.error(format!(
                    "`{key}` is {id}, past the {n} tokens of the vocabulary"
                ))),
                id => Ok(id.map(|id| id as u32)),
            }
        };
        Ok(Some(Self {
            bos: id(BOS_ID)?,
            eos: id(EOS_ID)?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: gguf
                .opt_bool("tokenizer.ggml.add_bos_token")?
                .unwrap_or(true),
            add_eos: gguf
                .opt_bool("tokenizer.ggml.add_eos_token")?
                .unwrap_or(false),
            add_space_prefix: gguf
                .opt_bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(true),
            tokens,
            scores,
            types,
            merges,
        }))
    }

    /// The vocabulary of a `tokenizer.json` (a BPE with byte fallback, as Gemma's is), with
    /// each merged piece scored by its merge's rank so that SentencePiece merges in that order.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let at = |problem: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message: problem,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|cause| Error::Json {
                path: path.to_path_buf(),
                cause,
            })?;
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(at(format!(
                "a {} model; GGUF's SentencePiece vocabulary holds a BPE",
                model["type"]
            )));
        }
        let vocab = model["vocab"]
            .as_object()
            .ok_or_else(|| at("no `model.vocab`".into()))?;
        let mut tokens = vec![None; vocab.len()];
        for (token, id) in vocab {
            let slot = id
                .as_u64()
                .and_then(|id| tokens.get_mut(id as usize))
                .ok_or_else(|| at(format!("`{token}` has id {id}, outside 0..{}", vocab.len())))?;
            *slot = Some(token.clone());
        }
        let tokens: Vec<String> = tokens
            .into_iter()
            .enumerate()
            .map(|(id, t)| t.ok_or_else(|| at(format!("no token has id {id}"))))
            .collect::<Result<_>>()?;
        let merges: Vec<(String, String)> = model["merges"]
            .as_array()
            .ok_or_else(|| at("no `model.merges`".into()))?
            .iter()
            .map(|m| json_merge(m).ok_or_else(|| at(format!("merge {m} is not two tokens"))))
            .collect::<Result<_>>()?;

        let ids: HashMap<&str, usize> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut types = vec![Piece::Normal; tokens.len()];
        for (id, token) in tokens.iter().enumerate() {
            if is_byte_piece(token) {
                types[id] = Piece::Byte;
            }
        }
        let unk = model["unk_token"]
            .as_str()
            .and_then(|t| ids.get(t))
            .map(|&i| i as u32);
        for added in json["added_tokens"].as_array().into_iter().flatten() {
            let (Some(id), Some(special)) = (added["id"].as_u64(), added["special"].as_bool())
            else {
                return Err(at(format!("added token {added} lacks an id or `special`")));
            };
            let slot = types
                .get_mut(id as usize)
                .ok_or_else(|| at(format!("added token {added} is outside the vocabulary")))?;
            *slot = if special {
                Piece::Control
            } else {
                Piece::UserDefined
            };
        }
        if let Some(unk) = unk {
            types[unk as usize] = Piece::Unknown;
        }
        // A merged piece scores minus its merge's rank; the rest score below every merge.
        let mut scores: Vec<f32> = (0..tokens.len())
            .map(|id| -((merges.len() + id) as f32))
            .collect();
        for (rank, (a, b)) in merges.iter().enumerate().rev() {
            if let Some(&id) = ids.get(format!("{a}{b}").as_str()) {
                scores[id] = -(rank as f32);
            }
        }

        let tokenizer = Tokenizer::from_bytes(&bytes, path)?;
        let special = |name: &str| ids.get(name).map(|&i| i as u32);
        let with_specials = tokenizer.encode("")?;
        let bos = special("<bos>");
        let eos = special("<eos>");
        Ok(Self {
            add_bos: bos.is_some_and(|b| with_specials.first() == Some(&b)),
            add_eos: eos.is_some_and(|e| with_specials.last() == Some(&e)),
            add_space_prefix: json["normalizer"].to_string().contains("\"Prepend\""),
            bos,
            eos,
            unk,
            pad: special("<pad>"),
            tokens,
            scores,
            types,
            merges: Some(merges),
        })
    }

    /// The `tokenizer.ggml.*` metadata that [`Vocab::read`] reads back as `self`, but for the
    /// BOS and EOS ids, which the model's configuration writes.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let key = |k: &str| format!("tokenizer.ggml.{k}");
        let mut m = vec![
            (key("model"), Value::String(SENTENCEPIECE.into())),
            (
                key("tokens"),
                Value::Array(self.tokens.iter().cloned().map(Value::String).collect()),
            ),
            (
                key("scores"),
                Value::Array(self.scores.iter().copied().map(Value::F32).collect()),
            ),
            (
                key("token_type"),
                Value::Array(self.types.iter().map(|&t| Value::I32(t as i32)).collect()),
            ),
            (key("add_bos_token"), Value::Bool(self.add_bos)),
            (key("add_eos_token"), Value::Bool(self.add_eos)),
            (key("add_space_prefix"), Value::Bool(self.add_space_prefix)),
        ];
        if let Some(merges) = &self.merges {
            let merges = merges
                .iter()
                .map(|(a, b)| Value::String(format!("{a} {b}")));
            m.push((key("merges"), Value::Array(merges.collect())));
        }
        for (name, id) in [
            ("unknown_token_id", self.unk),
            ("padding_token_id", self.pad),
        ] {
            if let Some(id) = id {
                m.push((key(name), Value::U32(id)));
            }
        }
        m
    }

    fn token(&self, id: Option<u32>) -> Option<&str> {
        self.tokens.get(id? as usize).map(String::as_str)
    }

    /// The Hugging Face tokenizer of this vocabulary: Gemma's `tokenizer.json` pipeline (spaces
    /// as `▁`, BPE with byte fallback, `<bos>` added) over these pieces.
    pub fn tokenizer(mut self, path: &Path) -> Result<Tokenizer> {
        let fail = |message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let post = self.post_processor().map_err(fail)?;
        let unk = self.token(self.unk).map(str::to_string);
        let added: Vec<AddedToken> = self
            .tokens
            .iter()
            .zip(&self.types)
            .filter(|(_, t)| t.is_added())
            .map(|(token, &t)| AddedToken::from(token.clone(), t != Piece::UserDefined))
            .collect();
        let merges = match self.merges.take() {
            Some(merges) => merges,
            None => self.merges_from_scores(),
        };
        let mut vocab = BpeVocab::default();
        for (id, token) in self.tokens.into_iter().enumerate() {
            vocab.entry(token).or_insert(id as u32);
        }
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .byte_fallback(true)
            .fuse_unk(true);
        if let Some(unk) = unk {
            builder = builder.unk_token(unk);
        }
        let bpe = builder.build().map_err(|e| fail(e.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let space = Replace::new(" ", "▁").map_err(|e| fail(e.to_string()))?;
        let normalizer = if self.add_space_prefix {
            NormalizerWrapper::Sequence(NormalizerSequence::new(vec![
                Prepend::new("▁".into()).into(),
                space.into(),
            ]))
        } else {
            space.into()
        };
        inner
            .with_normalizer(Some(normalizer))
            .map_err(|e| fail(e.to_string()))?;
        let unspace = Replace::new("▁", " ").map_err(|e| fail(e.to_string()))?;
        inner.with_decoder(Some(Sequence::new(vec![
            DecoderWrapper::Replace(unspace),
            DecoderWrapper::ByteFallback(ByteFallback::new()),
            DecoderWrapper::Fuse(Fuse::new()),
        ])));
        if let Some(post) = post {
            inner.with_post_processor(Some(post));
        }
        inner
            .add_special_tokens(added)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Tokenizer::new(inner, path))
    }

    /// `<bos>` and `<eos>` around the text where the file asks for them.
    fn post_processor(&self) -> std::result::Result<Option<TemplateProcessing>, String> {
        let bos = self
            .add_bos
            .then(|| self.token(self.bos).zip(self.bos))
            .flatten();
        let eos = self
            .add_eos
            .then(|| self.token(self.eos).zip(self.eos))
            .flatten();
        if bos.is_none() && eos.is_none() {
            return Ok(None);
        }
        let specials: Vec<(&str, u32)> = bos.into_iter().chain(eos).collect();
        let single: Vec<String> = bos
            .map(|(t, _)| t.to_string())
            .into_iter()
            .chain(["$A".to_string()])
            .chain(eos.map(|(t, _)| t.to_string()))
            .collect();
        TemplateProcessing::builder()
            .try_single(single)
            .map_err(|e| e.to_string())?
            .special_tokens(specials)
            .build()
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Every split of every normal piece into two pieces, the higher-scoring piece's first.
    fn merges_from_scores(&self) -> Vec<(String, String)> {
        let ids: HashMap<&str, usize> = self
            .tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| self.types[*i] == Piece::Normal)
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut merges: Vec<(f32, usize, usize)> = Vec::new();
        for (&piece, &id) in &ids {
            for (cut, _) in piece.char_indices().skip(1) {
                let (a, b) = piece.split_at(cut);
                if let (Some(&a), Some(&b)) = (ids.get(a), ids.get(b)) {
                    merges.push((self.scores[id], a, b));
                }
            }
        }
        merges.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        merges
            .into_iter()
            .map(|(_, a, b)| (self.tokens[a].clone(), self.tokens[b].clone()))
            .collect()
    }

    /// Where `tokenizer` (a `tokenizer.json` beside the file) does not hold this vocabulary:
    /// the first id whose token differs, or the sizes.
    pub fn disagreement(&self, tokenizer: &Tokenizer) -> Option<String> {
        let theirs = tokenizer.vocab_size();
        if theirs != self.tokens.len() {
            return Some(format!(
                "it has {theirs} tokens, the file {}",
                self.tokens.len()
            ));
        }
        self.tokens.iter().enumerate().find_map(|(id, ours)| {
            let theirs = tokenizer.id_to_token(id as u32);
            (theirs.as_deref() != Some(ours.as_str()))
                .then(|| format!("token {id} is {theirs:?} there and {ours:?} in the file"))
        })
    }
}

/// `a b`, as GGUF and `tokenizer.json` write a merge; a piece may itself start with a space.
fn split_merge(merge: &str) -> Option<(String, String)> {
    let start = merge.chars().next()?.len_utf8();
    let cut = start + merge[start..].find(' ')?;
    Some((merge[..cut].to_string(), merge[cut + 1..].to_string()))
}

/// A merge of `tokenizer.json`: `"a b"`, or `["a", "b"]` as tokenizers 0.20 and later write.
fn json_merge(merge: &serde_json::Value) -> Option<(String, String)> {
    match merge {
        serde_json::Value::String(s) => split_merge(s),
        serde_json::Value::Array(pair) => match pair.as_slice() {
            [a, b] => Some((a.as_str()?.to_string(), b.as_str()?.to_string())),
            _ => None,
        },
        _ => None,
    }
}

/// `<0x41>`: SentencePiece's byte-fallback pieces.
fn is_byte_piece(token: &str) -> bool {
    token.len() == 6
        && token.starts_with("<0x")
        && token.ends_with('>')
        && u8::from_str_radix(&token[3..5], 16).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SentencePiece BPE merges whatever adjacent pair makes the best piece: `abc` from `a`
    /// and `bc`, although no merge list would hold that pair.
    #[test]
    fn scores_merge_as_sentencepiece_does() {
        let tokens = ["<unk>", "<bos>", "a", "b", "c", "bc", "abc", "ab"];
        let scores = [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0];
        let vocab = Vocab {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            scores: scores.to_vec(),
            types: [Piece::Unknown, Piece::Control]
                .into_iter()
                .chain([Piece::Normal; 6])
                .collect(),
            merges: None,
            bos: Some(1),
            eos: None,
            unk: Some(0),
            pad: None,
            add_bos: true,
            add_eos: false,
            add_space_prefix: false,
        };
        let tokenizer = vocab.tokenizer(Path::new("test.gguf")).unwrap();
        // b+c (-1) first, then a+bc (-2); ab (-3) never forms.
        assert_eq!(tokenizer.encode("abc").unwrap(), [1, 6]);
        assert_eq!(tokenizer.encode("ab").unwrap(), [1, 7]);
        assert_eq!(tokenizer.encode_with("cab", false).unwrap(), [4, 7]);
    }

    #[test]
    fn merges_split_at_the_first_space_after_the_first_character() {
        assert_eq!(split_merge("a b"), Some(("a".into(), "b".into())));
        assert_eq!(split_merge("  b"), Some((" ".into(), "b".into())));
        assert_eq!(split_merge("ab"), None);
    }
}
