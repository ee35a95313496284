//! `tokenizer.ggml.*` GGUF metadata from a Hugging Face folder's `tokenizer.json`,
//! `tokenizer_config.json` and `config.json` (byte-level BPE, llama.cpp's "gpt2" model).

use crate::hf_config::HfConfig;
use crate::ModelError;
use candle_core::quantized::gguf_file::Value;
use serde_json::Value as Json;
use std::path::Path;

/// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

fn read_json(path: &Path) -> Result<Option<Json>, ModelError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))
}

fn bad(what: &str) -> ModelError {
    ModelError::Invalid(format!("tokenizer.json: {what}"))
}

/// Id of a token given as a number, a list (first wins) or, via `lookup`, a string.
fn token_id(v: Option<&Json>, lookup: &dyn Fn(&str) -> Option<u32>) -> Option<u32> {
    match v? {
        Json::Number(n) => n.as_u64().map(|n| n as u32),
        Json::Array(a) => token_id(a.first(), lookup),
        Json::String(s) => lookup(s),
        Json::Object(o) => token_id(o.get("content"), lookup),
        _ => None,
    }
}

/// Tokens padded to the embedding's row count, their types, and the merges.
fn vocab(tok: &Json, n_vocab: usize) -> Result<(Vec<String>, Vec<i32>, Vec<String>), ModelError> {
    let model = tok.get("model").ok_or_else(|| bad("no `model`"))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE")
        || model.get("byte_fallback").and_then(Json::as_bool) == Some(true)
    {
        return Err(ModelError::Unsupported(
            "only byte-level BPE tokenizers (Llama 3, Qwen) convert to GGUF".into(),
        ));
    }
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; n_vocab];
    let mut put = |id: u64, text: &str, ty: i32| -> Result<(), ModelError> {
        let slot = tokens
            .get_mut(id as usize)
            .ok_or_else(|| bad(&format!("token id {id} is past the model's {n_vocab} rows")))?;
        *slot = Some((text.to_string(), ty));
        Ok(())
    };
    let vocab = model.get("vocab").and_then(Json::as_object);
    for (text, id) in vocab.ok_or_else(|| bad("no model.vocab"))? {
        put(id.as_u64().ok_or_else(|| bad("vocab id"))?, text, NORMAL)?;
    }
    for t in tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let id = t
            .get("id")
            .and_then(Json::as_u64)
            .ok_or_else(|| bad("added token id"))?;
        let text = t
            .get("content")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("added token"))?;
        let special = t.get("special").and_then(Json::as_bool).unwrap_or(false);
        put(id, text, if special { CONTROL } else { USER_DEFINED })?;
    }
    // Rows no token names (padding) get placeholder names, as convert_hf_to_gguf.py does.
    let (texts, types) = (tokens.into_iter().enumerate())
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), USER_DEFINED)))
        .unzip();
    let mut merges = Vec::new();
    for m in model
        .get("merges")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        merges.push(match m {
            Json::String(s) => s.clone(),
            Json::Array(p) if p.len() == 2 => {
                let s = |j: &Json| j.as_str().map(str::to_string).ok_or_else(|| bad("merge"));
                format!("{} {}", s(&p[0])?, s(&p[1])?)
            }
            _ => return Err(bad("merge entry")),
        });
    }
    Ok((texts, types, merges))
}

fn strings(v: Vec<String>) -> Value {
    Value::Array(v.into_iter().map(Value::String).collect())
}

/// The chat template: tokenizer_config.json's (a string, or the "default" of a list),
/// else `chat_template.jinja`.
fn chat_template(dir: &Path, tc: Option<&Json>) -> Result<Option<String>, ModelError> {
    match tc.and_then(|t| t.get("chat_template")) {
        Some(Json::String(s)) => return Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let default = list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"));
            let t = default
                .and_then(|t| t.get("template"))
                .and_then(Json::as_str);
            return Ok(t.map(str::to_string));
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if !jinja.is_file() {
        return Ok(None);
    }
    std::fs::read_to_string(&jinja)
        .map(Some)
        .map_err(|source| ModelError::Io {
            path: jinja.display().to_string(),
            source,
        })
}

/// The metadata, or `tokenizer.ggml.model = "none"` when the folder has no tokenizer.
pub fn tokenizer_metadata(
    dir: &Path,
    config: &Json,
    hf: &HfConfig,
) -> Result<Vec<(String, Value)>, ModelError> {
    let Some(tok) = read_json(&dir.join("tokenizer.json"))? else {
        return Ok(vec![(
            "tokenizer.ggml.model".into(),
            Value::String("none".into()),
        )]);
    };
    let tc = read_json(&dir.join("tokenizer_config.json"))?;
    let (texts, types, merges) = vocab(&tok, hf.llama.vocab_size)?;
    let lookup = |s: &str| texts.iter().position(|t| t == s).map(|i| i as u32);
    let tc_get = |k: &str| tc.as_ref().and_then(|t| t.get(k));
    // tokenizer_config.json first, then config.json (gguf-py's SpecialVocab order).
    let special = |tc_key: &str, cfg_key: &str| {
        token_id(tc_get(tc_key), &lookup).or_else(|| token_id(config.get(cfg_key), &lookup))
    };
    let (bos, eos) = (
        special("bos_token", "bos_token_id"),
        special("eos_token", "eos_token_id"),
    );
    let mut md = vec![(
        "tokenizer.ggml.model".to_string(),
        Value::String("gpt2".into()),
    )];
    // llama.cpp picks its pre-tokenizer regex by this name; only names known to fit.
    let pre = match hf.llama.architecture.as_str() {
        "llama" if texts.len() >= 128_000 => Some("llama-bpe"),
        "qwen2" | "qwen3" => Some("qwen2"),
        _ => None,
    };
    if let Some(p) = pre {
        md.push(("tokenizer.ggml.pre".into(), Value::String(p.into())));
    }
    md.push((
        "tokenizer.ggml.token_type".into(),
        Value::Array(types.into_iter().map(Value::I32).collect()),
    ));
    if !merges.is_empty() {
        md.push(("tokenizer.ggml.merges".into(), strings(merges)));
    }
    md.push(("tokenizer.ggml.tokens".into(), strings(texts)));
    for (key, id) in [("bos_token_id", bos), ("eos_token_id", eos)] {
        if let Some(id) = id {
            md.push((format!("tokenizer.ggml.{key}"), Value::U32(id)));
        }
    }
    if let Some(b) = tc_get("add_bos_token").and_then(Json::as_bool) {
        md.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(b)));
    }
    if let Some(t) = chat_template(dir, tc.as_ref())? {
        md.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok(md)
}
