//! `tokenizer.ggml.*` GGUF metadata from a Hugging Face folder's `tokenizer.json`,
//! `tokenizer_config.json` and `config.json`: byte-level BPE as llama.cpp's "gpt2"
//! model, SentencePiece-style BPE (byte fallback) as its "llama" model (`hf_vocab_spm`).

use crate::hf_vocab_spm;
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

/// Token texts, their llama.cpp types, and the merges.
type Vocab = (Vec<String>, Vec<i32>, Vec<String>);

/// Tokens padded to the embedding's row count, their types, and the merges.
fn vocab(tok: &Json, n_vocab: usize) -> Result<Vocab, ModelError> {
    let model = tok.get("model").ok_or_else(|| bad("no `model`"))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        return Err(ModelError::Unsupported(
            "only BPE tokenizers (byte-level like Llama 3 and Qwen, or SentencePiece-style \
             like Gemma) convert to GGUF"
                .into(),
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
    architecture: &str,
    vocab_size: usize,
) -> Result<Vec<(String, Value)>, ModelError> {
    let Some(tok) = read_json(&dir.join("tokenizer.json"))? else {
        return Ok(vec![(
            "tokenizer.ggml.model".into(),
            Value::String("none".into()),
        )]);
    };
    let tc = read_json(&dir.join("tokenizer_config.json"))?;
    let (texts, mut types, merges) = vocab(&tok, vocab_size)?;
    let model = tok.get("model").unwrap_or(&Json::Null);
    let spm = hf_vocab_spm::is_sentencepiece(model);
    let lookup = |s: &str| texts.iter().position(|t| t == s).map(|i| i as u32);
    let tc_get = |k: &str| tc.as_ref().and_then(|t| t.get(k));
    // tokenizer_config.json first, then config.json (gguf-py's SpecialVocab order).
    let special = |tc_key: &str, cfg_key: &str| {
        token_id(tc_get(tc_key), &lookup).or_else(|| token_id(config.get(cfg_key), &lookup))
    };
    let unk = model.get("unk_token").and_then(Json::as_str);
    let ids = [
        ("bos_token_id", special("bos_token", "bos_token_id")),
        ("eos_token_id", special("eos_token", "eos_token_id")),
        ("padding_token_id", special("pad_token", "pad_token_id")),
        ("unknown_token_id", unk.and_then(|u| lookup(u))),
    ];
    let mut md = vec![(
        "tokenizer.ggml.model".to_string(),
        Value::String(if spm { "llama" } else { "gpt2" }.into()),
    )];
    // llama.cpp picks its pre-tokenizer regex by this name; only names known to fit.
    let pre = match architecture {
        _ if spm => None,
        "llama" if texts.len() >= 128_000 => Some("llama-bpe"),
        "qwen2" | "qwen3" => Some("qwen2"),
        _ => None,
    };
    if let Some(p) = pre {
        md.push(("tokenizer.ggml.pre".into(), Value::String(p.into())));
    }
    if spm {
        let scores = hf_vocab_spm::scores(&texts, &merges);
        md.push((
            "tokenizer.ggml.scores".into(),
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ));
        hf_vocab_spm::retype(&texts, &mut types, unk);
        let prefix = hf_vocab_spm::adds_space_prefix(&tok);
        md.push((
            "tokenizer.ggml.add_space_prefix".into(),
            Value::Bool(prefix),
        ));
    }
    md.push((
        "tokenizer.ggml.token_type".into(),
        Value::Array(types.into_iter().map(Value::I32).collect()),
    ));
    if !merges.is_empty() && !spm {
        md.push(("tokenizer.ggml.merges".into(), strings(merges)));
    }
    md.push(("tokenizer.ggml.tokens".into(), strings(texts)));
    for (key, id) in ids {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strs(v: &Value) -> Vec<String> {
        match v {
            Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn pads_types_pair_merges_and_special_ids() {
        let tok = json!({
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                      "merges": [["a", "b"]]},
            "added_tokens": [{"id": 4, "content": "<eos>", "special": true},
                             {"id": 3, "content": "<u>", "special": false}]});
        let (texts, types, merges) = vocab(&tok, 6).expect("vocab");
        assert_eq!(texts, ["a", "b", "ab", "<u>", "<eos>", "[PAD5]"]);
        assert_eq!(
            types,
            [NORMAL, NORMAL, NORMAL, USER_DEFINED, CONTROL, USER_DEFINED]
        );
        assert_eq!(merges, ["a b"]);
        // More tokens than embedding rows cannot be written.
        assert!(vocab(&tok, 4).is_err());
        let mut wp = tok.clone();
        wp["model"]["type"] = json!("WordPiece");
        assert!(matches!(vocab(&wp, 6), Err(ModelError::Unsupported(_))));
    }

    #[test]
    fn metadata_of_a_folder() {
        let dir = std::env::temp_dir().join(format!("hearth-vocab-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let tok = json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1},
            "merges": ["a b"]}, "added_tokens": [{"id": 2, "content": "<e>", "special": true}]});
        std::fs::write(dir.join("tokenizer.json"), tok.to_string()).expect("write");
        let tc = json!({"eos_token": "<e>", "chat_template": [
            {"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]});
        std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).expect("write");
        let cfg = json!({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 3, "bos_token_id": 0, "eos_token_id": 1});
        let md: std::collections::HashMap<String, Value> =
            tokenizer_metadata(&dir, &cfg, "qwen2", 3)
                .expect("metadata")
                .into_iter()
                .collect();
        let none = tokenizer_metadata(&std::env::temp_dir().join("no-such-dir"), &cfg, "qwen2", 3);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(strs(&md["tokenizer.ggml.tokens"]), ["a", "b", "<e>"]);
        assert!(matches!(md["tokenizer.ggml.pre"], Value::String(ref s) if s == "qwen2"));
        // tokenizer_config's eos wins over config.json's; bos falls back to config.json.
        assert!(matches!(md["tokenizer.ggml.eos_token_id"], Value::U32(2)));
        assert!(matches!(md["tokenizer.ggml.bos_token_id"], Value::U32(0)));
        assert!(matches!(md["tokenizer.chat_template"], Value::String(ref s) if s == "D"));
        let none = none.expect("no tokenizer is fine");
        assert!(
            matches!(&none[..], [(k, Value::String(v))] if k == "tokenizer.ggml.model" && v == "none")
        );
    }
}
