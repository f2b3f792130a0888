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

/// Where a file came from.
enum Source {
    Hub(hf_hub::api::sync::ApiRepo),
    Cache(hf_hub::CacheRepo),
}

/// Downloads (or finds in the cache) every file of `id` at `revision` that the engine reads,
/// and returns the local snapshot directory that holds them.
pub fn fetch(id: &str, revision: &str) -> Result<PathBuf> {
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let cache = Cache::from_env();
    let mut source = if offline_requested() {
        tracing::info!("HF_HUB_OFFLINE is set: using the local cache only");
        Source::Cache(cache.repo(repo.clone()))
    } else {
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| cache.token());
        let api = ApiBuilder::from_env()
            .with_progress(true)
            .with_token(token)
            .build()
            .map_err(|e| Error::Hub(format!("cannot set up the Hub client: {e}")))?;
        Source::Hub(api.repo(repo.clone()))
    };

    let config =
        get(&mut source, &cache, &repo, "config.json", id, revision)?.ok_or_else(|| {
            Error::Hub(format!(
                "{id} has no config.json at revision {revision}: is it a model repository?"
            ))
        })?;
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
}
