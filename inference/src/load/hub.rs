//! Checkpoints from the Hugging Face Hub, through hf-hub's local cache.
//!
//! Online, files are downloaded with progress bars (or taken from the cache when present).
//! With `HF_HUB_OFFLINE=1`, or when the Hub cannot be reached, only the cache is used, and the
//! user is told so. Gated repositories (all Gemma checkpoints) need a token: `HF_TOKEN`, or the
//! token file that `huggingface-cli login` writes.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};
use crate::load::weights::{INDEX_FILE, SINGLE_FILE};

/// Whether `HF_HUB_OFFLINE` asks for the cache only, as the Python libraries read it.
pub fn offline_requested() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Downloads that fail midway are resumed this many times, after waits that double from
/// 0.3 s up to 10 s.
const RETRIES: usize = 5;

/// The Hub cache: `HF_HUB_CACHE`, as the Python libraries read it, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache() -> Cache {
    match std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => Cache::new(dir.into()),
        None => Cache::from_env(),
    }
}

/// The token `huggingface-cli login` saved, under `HF_HOME` whatever `HF_HUB_CACHE` says.
pub fn saved_token() -> Option<String> {
    Cache::from_env().token()
}

/// Where a file came from.
enum Source {
    Hub(hf_hub::api::sync::ApiRepo),
    Cache(hf_hub::CacheRepo),
}

/// Downloads (or finds in the cache) every file of `id` at `revision` that the engine reads,
/// and returns the local snapshot directory that holds them. `REPO:QUANT` (llama.cpp's
/// spelling, e.g. `:Q4_K_M`), or a repository of GGUF files without `config.json`, gives the
/// one GGUF file of that quantization instead (see [`choose_gguf`]).
pub fn fetch(id: &str, revision: &str) -> Result<PathBuf> {
    let (id, quant) = match id.split_once(':') {
        Some((id, quant)) => (id, Some(quant)),
        None => (id, None),
    };
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let cache = cache();
    let mut source = if offline_requested() {
        tracing::info!("HF_HUB_OFFLINE is set: using the local cache only");
        Source::Cache(cache.repo(repo.clone()))
    } else {
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(saved_token);
        let api = ApiBuilder::from_env()
            .with_cache_dir(cache.path().clone())
            .with_progress(true)
            .with_retries(RETRIES)
            .with_token(token)
            .build()
            .map_err(|e| Error::Hub(format!("cannot set up the Hub client: {e}")))?;
        Source::Hub(api.repo(repo.clone()))
    };

    let config = match quant {
        Some(_) => None,
        None => get(&mut source, &cache, &repo, "config.json", id, revision)?,
    };
    let Some(config) = config else {
        let Source::Hub(api) = &source else {
            return Err(Error::Hub(format!(
                "{id}: choosing its GGUF file needs the Hub's list of files; pass the cached \
                 file with --gguf FILE"
            )));
        };
        let files: Vec<String> = api
            .info()
            .map_err(|e| Error::Hub(format!("listing the files of {id}: {e}")))?
            .siblings
            .into_iter()
            .map(|s| s.rfilename)
            .collect();
        let file = choose_gguf(id, &files, quant)?.to_string();
        return get(&mut source, &cache, &repo, &file, id, revision)?
            .ok_or_else(|| Error::Hub(format!("{id}: {file} is listed but cannot be fetched")));
    };
    for optional in ["tokenizer_config.json", "generation_config.json"] {
        get(&mut source, &cache, &repo, optional, id, revision)?;
    }
    get(&mut source, &cache, &repo, "tokenizer.json", id, revision)?
        .ok_or_else(|| Error::Hub(format!("{id} has no tokenizer.json at revision {revision}")))?;
    match get(&mut source, &cache, &repo, INDEX_FILE, id, revision)? {
        Some(index) => {
            for shard in
                crate::load::weights::weight_files(index.parent().unwrap_or(Path::new(".")))?
            {
                let name = shard
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                get(&mut source, &cache, &repo, &name, id, revision)?.ok_or_else(|| {
                    Error::Hub(format!(
                        "{id}: the index lists {name}, which the repository lacks"
                    ))
                })?;
            }
        }
        None => {
            get(&mut source, &cache, &repo, SINGLE_FILE, id, revision)?.ok_or_else(|| {
                Error::Hub(format!(
                    "{id} has no {SINGLE_FILE} or {INDEX_FILE} at revision {revision}"
                ))
            })?;
        }
    }
    Ok(config.parent().unwrap_or(Path::new(".")).to_path_buf())
}

/// One file: `Ok(None)` when the repository does not have it. Falls back to the cache, once and
/// for good, when the Hub cannot be reached.
/// The GGUF file of a repository's `files` to load: the one whose name holds `quant` as a
/// word (`Q4_K_M`, any case), or the only one. Multimodal projectors (`mmproj*`) are not
/// models. An error lists the choices when there is none or more than one.
pub fn choose_gguf<'a>(id: &str, files: &'a [String], quant: Option<&str>) -> Result<&'a str> {
    let models: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| f.ends_with(".gguf") && !file_name(f).starts_with("mmproj"))
        .collect();
    let chosen: Vec<&str> = match quant {
        Some(q) => models
            .iter()
            .copied()
            .filter(|f| names_quant(f, q))
            .collect(),
        None => models.clone(),
    };
    match (chosen.as_slice(), quant) {
        ([one], _) => Ok(one),
        _ if models.is_empty() => Err(Error::Hub(format!(
            "{id} has neither config.json nor a .gguf file: is it a Gemma 3 model repository?"
        ))),
        ([], Some(q)) => Err(Error::Hub(format!(
            "{id} has no {q} file; it has {}",
            models.join(", ")
        ))),
        (_, Some(q)) => Err(Error::Hub(format!(
            "{id} has several {q} files ({}); split GGUF files are not read, pass one with --gguf",
            chosen.join(", ")
        ))),
        (_, None) => Err(Error::Hub(format!(
            "{id} has several GGUF files ({}); name one as {id}:QUANT, e.g. {id}:Q4_K_M",
            models.join(", ")
        ))),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `file`'s name holds `quant` between characters that are not part of a type name.
fn names_quant(file: &str, quant: &str) -> bool {
    let name = file_name(file).to_ascii_uppercase();
    let quant = quant.to_ascii_uppercase();
    let part_of_name = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    name.match_indices(&quant).any(|(at, _)| {
        !part_of_name(name[..at].chars().next_back())
            && !part_of_name(name[at + quant.len()..].chars().next())
    })
}

fn get(
    source: &mut Source,
    cache: &Cache,
    repo: &Repo,
    file: &str,
    id: &str,
    rev: &str,
) -> Result<Option<PathBuf>> {
    match source {
        Source::Cache(c) => match c.get(file) {
            Some(p) => Ok(Some(p)),
            None if is_optional(file) => Ok(None),
            None => Err(Error::Hub(format!(
                "{file} of {id} (revision {rev}) is not in the local cache ({}); download it once with \
                 network access (and HF_HUB_OFFLINE unset), or pass --model-dir",
                cache.path().display()
            ))),
        },
        Source::Hub(api) => match api.get(file) {
            Ok(p) => Ok(Some(p)),
            Err(e) => match classify(&e) {
                Failure::Missing => Ok(None),
                Failure::Refused(code) => Err(Error::Hub(refused(id, code))),
                Failure::Unreachable => {
                    eprintln!("note: cannot reach the Hub ({e}); using the local cache");
                    *source = Source::Cache(cache.repo(repo.clone()));
                    get(source, cache, repo, file, id, rev)
                }
                Failure::Other => Err(Error::Hub(format!("downloading {file} of {id}: {e}"))),
            },
        },
    }
}

fn is_optional(file: &str) -> bool {
    matches!(
        file,
        "tokenizer_config.json" | "generation_config.json" | INDEX_FILE
    )
}

/// What a Hub error means for the user.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Missing,
    Refused(u16),
    Unreachable,
    Other,
}

pub fn classify(e: &ApiError) -> Failure {
    match e {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::Status(404, _) => Failure::Missing,
            ureq::Error::Status(code @ (401 | 403), _) => Failure::Refused(*code),
            ureq::Error::Status(..) => Failure::Other,
            ureq::Error::Transport(_) => Failure::Unreachable,
        },
        ApiError::TooManyRetries(inner) => classify(inner),
        _ => Failure::Other,
    }
}

/// The message for a 401 or 403 from a gated repository.
pub fn refused(id: &str, code: u16) -> String {
    format!(
        "the Hub refused access to {id} (HTTP {code}). Gemma models are gated: accept the license at \
         https://huggingface.co/{id} while logged in, then set HF_TOKEN to a token with read access \
         (or run `huggingface-cli login`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> ApiError {
        let response = ureq::Response::new(code, "status", "").expect("a valid response");
        ApiError::RequestError(Box::new(ureq::Error::Status(code, response)))
    }

    #[test]
    fn gated_and_missing_files_are_told_apart() {
        assert_eq!(classify(&status(401)), Failure::Refused(401));
        assert_eq!(classify(&status(403)), Failure::Refused(403));
        assert_eq!(classify(&status(404)), Failure::Missing);
        assert_eq!(classify(&status(500)), Failure::Other);
        assert_eq!(
            classify(&ApiError::TooManyRetries(Box::new(status(403)))),
            Failure::Refused(403)
        );
    }

    #[test]
    fn offline_is_read_like_the_python_libraries() {
        // One test owns HF_HUB_OFFLINE, so parallel tests do not race on it.
        for (value, offline) in [
            ("1", true),
            ("TRUE", true),
            ("yes", true),
            ("0", false),
            ("", false),
        ] {
            std::env::set_var("HF_HUB_OFFLINE", value);
            assert_eq!(offline_requested(), offline, "{value:?}");
        }
        std::env::remove_var("HF_HUB_OFFLINE");
        assert!(!offline_requested());
    }

    /// The files of bartowski/google_gemma-3-1b-it-GGUF and google's QAT repository, in
    /// their naming.
    fn listing() -> Vec<String> {
        [
            "README.md",
            "google_gemma-3-1b-it-Q4_K_M.gguf",
            "google_gemma-3-1b-it-Q4_K_S.gguf",
            "google_gemma-3-1b-it-Q4_K.gguf",
            "google_gemma-3-1b-it-Q8_0.gguf",
            "google_gemma-3-1b-it-bf16.gguf",
            "mmproj-google_gemma-3-1b-it-f16.gguf",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn a_quantization_picks_the_file_that_names_it_as_a_word() {
        let files = listing();
        let pick = |q| choose_gguf("r", &files, Some(q)).unwrap();
        assert_eq!(pick("Q4_K_M"), "google_gemma-3-1b-it-Q4_K_M.gguf");
        assert_eq!(pick("q4_k"), "google_gemma-3-1b-it-Q4_K.gguf");
        assert_eq!(pick("BF16"), "google_gemma-3-1b-it-bf16.gguf");
        let e = choose_gguf("r", &files, Some("Q6_K"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r has no Q6_K file; it has google_gemma-3-1b-it-Q4_K_M.gguf"),
            "{e}"
        );
        assert!(!e.contains("mmproj"), "{e}");
    }

    #[test]
    fn without_a_quantization_only_a_single_gguf_file_is_chosen() {
        let qat = [
            "gemma-3-1b-it-q4_0.gguf".to_string(),
            "mmproj-model-f16.gguf".into(),
        ];
        assert_eq!(
            choose_gguf("r", &qat, None).unwrap(),
            "gemma-3-1b-it-q4_0.gguf"
        );
        let e = choose_gguf("r", &listing(), None).unwrap_err().to_string();
        assert!(
            e.contains("several GGUF files") && e.contains("r:Q4_K_M"),
            "{e}"
        );
        let e = choose_gguf("r", &["README.md".to_string()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither config.json nor a .gguf file"), "{e}");
    }
}
