//! `Tokenizer::from_hf_dir`: a Hugging Face model folder's `tokenizer.json`, with the
//! special tokens of `tokenizer_config.json` and the stop ids of `generation_config.json`.

use std::path::Path;

use serde_json::Value;

use crate::error::{Result, TextError};
use crate::gguf_tokenizer::Tokenizer;

/// Reads `dir/name` as JSON; `None` when the file does not exist.
pub(crate) fn read_json(dir: &Path, name: &str) -> Result<Option<Value>> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TextError::Io(format!("{}: {e}", path.display()))),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TextError::Io(format!("{}: {e}", path.display())))
}

/// A special token's text: configs write it as a string or as an AddedToken object.
pub(crate) fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> TextError {
    TextError::InvalidMetadata {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `eos_token_id` of generation_config.json: an int or a list of ints.
fn generation_eos_ids(gen: &Value) -> Result<Vec<u32>> {
    let as_id = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid("generation_config.json eos_token_id", format!("{v}")))
    };
    match gen.get("eos_token_id") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(as_id).collect(),
        Some(v) => Ok(vec![as_id(v)?]),
    }
}

/// Tokens `added_tokens_decoder` flags special are special here too (transformers
/// registers them so), so `decode(_, true)` drops them.
fn mark_special(inner: &mut tokenizers::Tokenizer, cfg: &Value) -> Result<()> {
    let Some(decoder) = cfg.get("added_tokens_decoder").and_then(Value::as_object) else {
        return Ok(());
    };
    let special: Vec<tokenizers::AddedToken> = decoder
        .values()
        .filter(|t| t.get("special").and_then(Value::as_bool) == Some(true))
        .filter_map(|t| t.get("content").and_then(Value::as_str))
        .map(|c| tokenizers::AddedToken::from(c.to_string(), true))
        .collect();
    if !special.is_empty() {
        inner.add_special_tokens(special)?;
    }
    Ok(())
}

impl Tokenizer {
    /// Builds the tokenizer of a Hugging Face model folder. `tokenizer.json` is
    /// required; the two config files are optional. EOS ids: the config's `eos_token`
    /// first, then every `eos_token_id` of generation_config.json.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Tokenizer> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        let mut inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| TextError::Tokenizer(format!("{}: {e}", path.display())))?;
        let cfg = read_json(dir, "tokenizer_config.json")?.unwrap_or(Value::Null);
        mark_special(&mut inner, &cfg)?;
        let gen = read_json(dir, "generation_config.json")?.unwrap_or(Value::Null);

        let id_of = |key: &str| -> Result<Option<u32>> {
            match token_text(cfg.get(key)) {
                None => Ok(None),
                Some(t) => inner.token_to_id(&t).map(Some).ok_or_else(|| {
                    invalid(
                        &format!("tokenizer_config.json {key}"),
                        format!("{t:?} is not in the vocabulary"),
                    )
                }),
            }
        };
        let bos_id = id_of("bos_token")?;
        let pad_id = id_of("pad_token")?;
        let mut eos_ids: Vec<u32> = id_of("eos_token")?.into_iter().collect();
        let vocab = inner.get_vocab_size(true) as u32;
        for id in generation_eos_ids(&gen)? {
            if id >= vocab {
                return Err(invalid(
                    "generation_config.json eos_token_id",
                    format!("id {id} is outside the vocabulary of {vocab}"),
                ));
            }
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }

        // Whether BOS/EOS are added: the config's flags where written, else what
        // tokenizer.json's post-processor does (Llama 3 adds BOS there).
        let probe = inner.encode_fast("a", true)?;
        let probe = probe.get_ids();
        let flag =
            |key: &str, fallback: bool| cfg.get(key).and_then(Value::as_bool).unwrap_or(fallback);
        let add_bos = flag(
            "add_bos_token",
            bos_id.is_some() && probe.first().copied() == bos_id,
        );
        let add_eos = flag(
            "add_eos_token",
            !eos_ids.is_empty() && probe.last().copied() == eos_ids.first().copied(),
        );
        Ok(Tokenizer::from_parts(
            inner, bos_id, eos_ids, pad_id, add_bos, add_eos,
        ))
    }
}

#[cfg(test)]
#[path = "hf_tokenizer_tests.rs"]
pub(crate) mod tests;
