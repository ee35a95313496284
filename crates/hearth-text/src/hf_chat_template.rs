//! `ChatTemplate::from_hf_dir`: the template of a Hugging Face model folder
//! (`tokenizer_config.json`'s `chat_template`, else `chat_template.jinja`).

use std::path::Path;

use serde_json::Value;

use crate::chat_template::ChatTemplate;
use crate::error::{Result, TextError};
use crate::gguf_tokenizer::Tokenizer;
use crate::hf_tokenizer::{read_json, token_text};

/// The template source: a string, or a list of `{name, template}` where "default"
/// is the chat one (transformers picks it the same way when no name is asked for).
fn template_source(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    }
}

impl ChatTemplate {
    /// Reads the folder's chat template; `bos_token`/`eos_token` are the config's
    /// strings (else `tokenizer`'s BOS/EOS tokens).
    pub fn from_hf_dir(dir: impl AsRef<Path>, tokenizer: &Tokenizer) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = read_json(dir, "tokenizer_config.json")?.unwrap_or(Value::Null);
        let source = match cfg.get("chat_template").and_then(template_source) {
            Some(s) => s,
            None => {
                let path = dir.join("chat_template.jinja");
                std::fs::read_to_string(&path).map_err(|e| {
                    TextError::MissingMetadata(format!(
                        "chat_template (not in tokenizer_config.json; {}: {e})",
                        path.display()
                    ))
                })?
            }
        };
        let token = |key: &str, id: Option<u32>| {
            token_text(cfg.get(key))
                .or_else(|| id.and_then(|i| tokenizer.id_to_token(i)))
                .unwrap_or_default()
        };
        ChatTemplate::new(
            &source,
            token("bos_token", tokenizer.bos_id()),
            token("eos_token", tokenizer.eos_id()),
        )
    }
}

#[cfg(test)]
#[path = "hf_chat_template_tests.rs"]
mod tests;
