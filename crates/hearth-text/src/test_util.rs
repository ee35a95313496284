//! A small synthetic GGUF byte-level vocabulary for unit tests (no model file).

use candle_core::quantized::gguf_file::Value;

use crate::metadata::Metadata;

/// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the rest
/// are shifted past U+0100.
pub fn byte_chars() -> Vec<char> {
    let mut n = 0u32;
    (0u32..256)
        .map(|b| {
            let printable =
                (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            if printable {
                char::from_u32(b).unwrap_or('?')
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap_or('?')
            }
        })
        .collect()
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

/// Ids: 0 `<|endoftext|>`, 1 `<|im_start|>`, 2 `<|im_end|>` (CONTROL), 3 `<tool>`
/// (USER_DEFINED), 4..260 the 256 bytes, then `Ġh` and `Ġhi` from two merges.
pub fn synthetic_metadata(pre: &str) -> Metadata {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"]
        .map(String::from)
        .to_vec();
    let mut types = vec![3i32, 3, 3, 4];
    for c in byte_chars() {
        tokens.push(c.to_string());
        types.push(1);
    }
    tokens.push("Ġh".into());
    tokens.push("Ġhi".into());
    types.extend([1, 1]);
    let merges = vec!["Ġ h".to_string(), "Ġh i".to_string()];
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    md.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
    md.insert("tokenizer.ggml.tokens".into(), strings(&tokens));
    md.insert("tokenizer.ggml.merges".into(), strings(&merges));
    md.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(types.into_iter().map(Value::I32).collect()),
    );
    md.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1));
    md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
    md
}

/// Id of a single byte in the synthetic vocabulary.
pub fn byte_id(b: u8) -> u32 {
    4 + u32::from(b)
}
