//! Chat templates: the checkpoint's Jinja `chat_template`, rendered as transformers'
//! `apply_chat_template(..., tokenize=False)` renders it.

use std::path::Path;

use minijinja::{context, Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One turn of a conversation. Roles are the template's: Gemma's knows `system`, `user` and
/// `assistant` (rendered as `model`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template with the special tokens it may refer to.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    /// Where the template came from, for its errors: a file, or a key of one.
    origin: String,
    /// Special tokens passed to the template, as transformers passes `special_tokens_map`.
    tokens: SpecialTokens,
}

#[derive(Debug, Clone, Default, Serialize)]
struct SpecialTokens {
    bos_token: Option<String>,
    eos_token: Option<String>,
    unk_token: Option<String>,
    pad_token: Option<String>,
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Reads `chat_template`, `bos_token` and `eos_token` (and `unk_token`, `pad_token`) from a
    /// checkpoint's `tokenizer_config.json`. The template may be a string or a list of
    /// `{name, template}`, of which the one named `default` is used. `None` if the file has
    /// no template (a base model's); an error if it has one that cannot be used.
    pub fn from_tokenizer_config(path: &Path) -> Result<Option<Self>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let config: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|cause| Error::Json {
                path: path.to_path_buf(),
                cause,
            })?;
        let at = |problem: String| Error::Invalid(format!("{}: {problem}", path.display()));
        let template = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    at("`chat_template` is a list without a template named `default`".into())
                })?
                .to_string(),
            Some(_) => {
                return Err(at(
                    "`chat_template` must be a string or a list of {name, template}".into(),
                ))
            }
            None => return Ok(None),
        };
        let token = |key: &str| -> Result<Option<String>> {
            match config.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                // Older configs store an AddedToken: {"content": "<bos>", ...}.
                Some(v) => v
                    .get("content")
                    .and_then(|c| c.as_str())
                    .map(|c| Some(c.to_string()))
                    .ok_or_else(|| at(format!("`{key}` is neither a string nor a token"))),
            }
        };
        let tokens = SpecialTokens {
            bos_token: token("bos_token")?,
            eos_token: token("eos_token")?,
            unk_token: token("unk_token")?,
            pad_token: token("pad_token")?,
        };
        Self::new(template, tokens)
            .map(|t| Some(t.with_origin(path.display())))
            .map_err(|e| at(e.to_string()))
    }

    /// Names where the template came from in the errors of its renderings.
    pub fn with_origin(mut self, origin: impl std::fmt::Display) -> Self {
        self.origin = origin.to_string();
        self
    }

    /// A template from its source, with the given BOS and EOS tokens.
    pub fn from_source(
        template: impl Into<String>,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self> {
        let tokens = SpecialTokens {
            bos_token: bos_token.map(str::to_string),
            eos_token: eos_token.map(str::to_string),
            ..SpecialTokens::default()
        };
        Self::new(template.into(), tokens)
    }

    fn new(template: String, tokens: SpecialTokens) -> Result<Self> {
        let mut env = Environment::new();
        // transformers' environment: block tags eat their line's leading whitespace and the
        // newline after them; a single trailing newline of the template is dropped (Jinja's
        // and minijinja's default).
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(FUEL));
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, template.clone())
            .map_err(|e| {
                Error::Invalid(format!(
                    "chat template does not compile{}; {WAY_ROUND}",
                    describe(&e)
                ))
            })?;
        Ok(Self {
            env,
            source: template,
            origin: "the chat template".into(),
            tokens,
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `bos_token` the template sees.
    pub fn bos_token(&self) -> Option<&str> {
        self.tokens.bos_token.as_deref()
    }

    /// The `eos_token` the template sees.
    pub fn eos_token(&self) -> Option<&str> {
        self.tokens.eos_token.as_deref()
    }

    /// The prompt text for `messages`, ending with the header of the model's turn when
    /// `add_generation_prompt` is set.
    ///
    /// The text already contains the special tokens the template writes (Gemma's begins with
    /// `<bos>`), so encode it WITHOUT adding special tokens
    /// (`Tokenizer::encode_with(text, false)`), as `apply_chat_template` does; encoding it with
    /// them would give two BOS tokens. A conversation the template rejects (roles that do not
    /// alternate, for Gemma) is an [`Error::Invalid`] with the template's message.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        if messages.is_empty() {
            // transformers refuses too; templates index messages[0].
            return Err(Error::Invalid(
                "cannot apply the chat template to an empty conversation".into(),
            ));
        }
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::Invalid(format!("chat template: {e}")))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                ..minijinja::Value::from_serialize(&self.tokens)
            })
            .map_err(|e| render_error(e, &self.origin))
    }
}

/// `raise_exception(msg)`, which HF templates call to reject a conversation.
fn raise_exception(message: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message).with_source(Raised))
}

/// Marks an error as the template's own `raise_exception`, whose message is the whole story.
#[derive(Debug)]
struct Raised;

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("raised by the template")
    }
}

impl std::error::Error for Raised {}

/// Instructions a template may run for one rendering. Gemma's renders a 1,000-message
/// conversation in far fewer; a template that loops without end stops here instead of
/// running until Ctrl-C.
const FUEL: u64 = 50_000_000;

/// What to do about a template that fails.
const WAY_ROUND: &str = "fix the template, or pass --raw to go without it";

/// ` at line N: what went wrong`, on one line (minijinja's alternate form quotes the source).
fn describe(e: &minijinja::Error) -> String {
    let line = e
        .line()
        .map(|l| format!(" at line {l}"))
        .unwrap_or_default();
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    format!("{line}: {what}")
}

fn render_error(e: minijinja::Error, origin: &str) -> Error {
    if e.kind() == ErrorKind::OutOfFuel {
        return Error::Invalid(format!(
            "{origin}: the chat template ran {FUEL} steps without finishing (a loop without end?); {WAY_ROUND}"
        ));
    }
    // minijinja wraps a function's error when it crosses the call; find ours in the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cause {
        if let Some(m) = err.downcast_ref::<minijinja::Error>() {
            if std::error::Error::source(m).is_some_and(|s| s.is::<Raised>()) {
                if let Some(detail) = m.detail() {
                    return Error::Invalid(format!("chat template: {detail}"));
                }
            }
        }
        cause = err.source();
    }
    Error::Invalid(format!(
        "{origin}: chat template failed to render{}; {WAY_ROUND}",
        describe(&e)
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn gemma() -> ChatTemplate {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../golden/models/tiny-text/tokenizer_config.json");
        ChatTemplate::from_tokenizer_config(&path).unwrap().unwrap()
    }

    fn msgs(turns: &[(&str, &str)]) -> Vec<Message> {
        turns.iter().map(|(r, c)| Message::new(*r, *c)).collect()
    }

    // Every expected string below is transformers 5.24's apply_chat_template(tokenize=False)
    // on golden/models/tiny-text.

    #[test]
    fn system_and_user_render_as_transformers_does() {
        let text = gemma()
            .render(&msgs(&[("system", "SYSTEM"), ("user", "USER")]), true)
            .unwrap();
        assert_eq!(
            text,
            "<bos><start_of_turn>user\nSYSTEM\n\nUSER<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn multi_turn_trims_content_and_renames_assistant() {
        let text = gemma()
            .render(
                &msgs(&[
                    ("system", "  You are helpful.  "),
                    ("user", " Hi there \n"),
                    ("assistant", "Hello!"),
                    ("user", "Bye"),
                ]),
                false,
            )
            .unwrap();
        assert_eq!(
            text,
            "<bos><start_of_turn>user\n  You are helpful.  \n\nHi there<end_of_turn>\n\
             <start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n"
        );
    }

    #[test]
    fn user_only_without_generation_prompt() {
        let text = gemma().render(&msgs(&[("user", "Hi")]), false).unwrap();
        assert_eq!(text, "<bos><start_of_turn>user\nHi<end_of_turn>\n");
    }

    #[test]
    fn roles_that_do_not_alternate_are_the_templates_error() {
        let err = gemma()
            .render(&msgs(&[("user", "a"), ("user", "b")]), true)
            .unwrap_err();
        match err {
            Error::Invalid(m) => assert_eq!(
                m,
                "chat template: Conversation roles must alternate user/assistant/user/assistant/..."
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(gemma().render(&[], true), Err(Error::Invalid(_))));
    }

    #[test]
    fn list_form_picks_default_and_tokens_may_be_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer_config.json");
        let config = serde_json::json!({
            "chat_template": [
                {"name": "tool_use", "template": "TOOLS"},
                {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}"},
            ],
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>",
        });
        std::fs::write(&path, config.to_string()).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&path).unwrap().unwrap();
        assert_eq!((t.bos_token(), t.eos_token()), (Some("<s>"), Some("</s>")));
        assert_eq!(
            t.render(&msgs(&[("user", "x"), ("assistant", "y")]), false)
                .unwrap(),
            "<s>user:x</s>assistant:y</s>"
        );

        std::fs::write(&path, r#"{"bos_token": "<s>"}"#).unwrap();
        assert!(ChatTemplate::from_tokenizer_config(&path)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_template_that_fails_names_its_file_line_and_the_way_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer_config.json");
        std::fs::write(&path, r#"{"chat_template": "hi\n{% if %}"}"#).unwrap();
        let path_text = path.display().to_string();
        let one_line_naming = |err: String, what: &str| {
            for part in [path_text.as_str(), what, "--raw"] {
                assert!(err.contains(part), "{part}: {err}");
            }
            assert_eq!(err.lines().count(), 1, "{err}");
        };
        let err = ChatTemplate::from_tokenizer_config(&path).err().unwrap();
        one_line_naming(err.to_string(), "does not compile at line 2");

        std::fs::write(&path, r#"{"chat_template": "a\nb{{ nothing.at.all }}"}"#).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&path).unwrap().unwrap();
        let err = t.render(&msgs(&[("user", "x")]), true).unwrap_err();
        one_line_naming(err.to_string(), "failed to render at line 2");
    }

    #[test]
    fn hf_template_features() {
        // trim_blocks and lstrip_blocks: tag lines leave no blank lines or indentation.
        // Expected output from Jinja2 with transformers' settings.
        let src = "{% for m in messages[1:] %}\n    {% if loop.first %}[{{ loop.index0 }}]{% endif %}\n  {{ m.content | trim }}{% if m.content is string and messages is iterable %}!{% endif %}\n\n{% endfor %}\n{% if add_generation_prompt %}GO{% endif %}\n";
        let t = ChatTemplate::from_source(src, None, None).unwrap();
        let text = t
            .render(&msgs(&[("a", "skip"), ("b", " one "), ("c", "two")]), true)
            .unwrap();
        assert_eq!(text, "[0]  one!\n  two!\nGO");

        let t = ChatTemplate::from_source(
            "{{ raise_exception('no ' + messages[0].role) }}",
            None,
            None,
        )
        .unwrap();
        let err = t.render(&msgs(&[("x", "")]), false).unwrap_err();
        assert_eq!(err.to_string(), "chat template: no x");

        // Other failures are errors too, not panics.
        let t = ChatTemplate::from_source("{{ messages | nosuchfilter }}", None, None);
        assert!(t.is_err() || t.unwrap().render(&msgs(&[("x", "")]), false).is_err());
        assert!(ChatTemplate::from_source("{% if %}", None, None).is_err());
    }

    #[test]
    fn a_template_that_does_not_end_is_stopped() {
        let src = "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}";
        let t = ChatTemplate::from_source(src, None, None).unwrap();
        let err = t.render(&msgs(&[("user", "hi")]), true).unwrap_err();
        assert!(err.to_string().contains("without finishing"), "{err}");
        assert!(err.to_string().contains("--raw"), "{err}");

        // Gemma's own template renders a long conversation well within the fuel.
        let long: Vec<(&str, &str)> = (0..1000)
            .map(|i| {
                if i % 2 == 0 {
                    ("user", "hello")
                } else {
                    ("assistant", "hi")
                }
            })
            .collect();
        assert!(gemma().render(&msgs(&long), true).is_ok());
    }
}
