//! Token log-probabilities in the two OpenAI shapes (chat and legacy completions).

use hearth_engine::TokenLogprob;
use hearth_text::Tokenizer;
use serde_json::{json, Map, Value};

fn token_text(tok: &Tokenizer, id: u32) -> String {
    tok.decode(&[id], false).unwrap_or_default()
}

fn entry(tok: &Tokenizer, id: u32, logprob: f32) -> Value {
    let text = token_text(tok, id);
    let bytes: Vec<u8> = text.as_bytes().to_vec();
    json!({ "token": text, "logprob": logprob, "bytes": bytes })
}

/// Chat: `{"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}`.
pub fn chat(tok: &Tokenizer, lps: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = lps
        .iter()
        .map(|lp| {
            let mut e = entry(tok, lp.token_id, lp.logprob);
            let top: Vec<Value> = lp.top.iter().map(|&(id, l)| entry(tok, id, l)).collect();
            e["top_logprobs"] = Value::Array(top);
            e
        })
        .collect();
    json!({ "content": content })
}

/// Completions: parallel lists `tokens`, `token_logprobs`, `top_logprobs` (a map
/// token -> logprob per position) and `text_offset` (from `offset`, in bytes).
pub fn completion(tok: &Tokenizer, lps: &[TokenLogprob], mut offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    for lp in lps {
        let text = token_text(tok, lp.token_id);
        text_offset.push(offset);
        offset += text.len();
        tokens.push(text);
        token_logprobs.push(lp.logprob);
        let mut top = Map::new();
        for &(id, l) in &lp.top {
            top.insert(token_text(tok, id), json!(l));
        }
        top_logprobs.push(Value::Object(top));
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}
