//! hearth-text against Hugging Face transformers on the real default model's GGUF:
//! encode, decode and chat-template renders must match the committed reference
//! (tests/fixtures/smollm2_text_reference.json, made by scripts/reference/text_reference.py).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use hearth_text::{ChatMessage, ChatTemplate, IncrementalDetokenizer, Tokenizer};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HEARTH_TEST_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HEARTH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".local/share/hearth")
        });
    let p = home.join("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "the default model is missing at {}: run scripts/test (it pulls it)",
        p.display()
    );
    p
}

fn reference() -> Json {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/smollm2_text_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The GGUF's metadata, after checking it is the very file the reference was made from.
fn metadata(reference: &Json) -> HashMap<String, Value> {
    let path = model_path();
    let bytes = std::fs::read(&path).expect("model readable");
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        sha,
        reference["model"]["sha256"]
            .as_str()
            .expect("sha256 in fixture"),
        "{}",
        path.display()
    );
    let mut cursor = std::io::Cursor::new(bytes);
    Content::read(&mut cursor).expect("GGUF parses").metadata
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn s(v: &Json) -> &str {
    v.as_str().expect("string")
}

#[test]
fn encode_and_decode_match_transformers() {
    let r = reference();
    let tok = Tokenizer::from_gguf_metadata(&metadata(&r)).expect("tokenizer builds");
    let cases = r["encode"].as_array().expect("encode cases");
    assert!(cases.len() >= 20);
    for case in cases {
        let text = s(&case["text"]);
        let want = ids(&case["ids"]);
        assert_eq!(
            tok.encode(text, false).expect("encode"),
            want,
            "encode {text:?}"
        );
        assert_eq!(
            tok.decode(&want, false).expect("decode"),
            s(&case["decode"]),
            "decode {text:?}"
        );
        let skipped = tok.decode(&want, true).expect("decode");
        assert_eq!(
            skipped,
            s(&case["decode_skip_special"]),
            "decode skip_special {text:?}"
        );
    }
}

/// The GGUF says `add_bos_token = false` (llama.cpp adds none); transformers 4.46's
/// GGUF converter adds BOS anyway. hearth follows the file: add_special_tokens adds
/// nothing for this model, and the reference differs exactly by that leading BOS.
#[test]
fn add_special_tokens_follows_the_gguf_flag() {
    let r = reference();
    let tok = Tokenizer::from_gguf_metadata(&metadata(&r)).expect("tokenizer builds");
    assert_eq!(r["special"]["add_bos_token"], Json::Bool(false));
    assert!(!tok.adds_bos());
    for case in r["encode"].as_array().expect("encode cases") {
        let text = s(&case["text"]);
        let plain = ids(&case["ids"]);
        let hf = ids(&case["ids_with_special"]);
        assert_eq!(
            hf[1..],
            plain[..],
            "transformers' only addition is BOS for {text:?}"
        );
        assert_eq!(tok.encode(text, true).expect("encode"), plain, "{text:?}");
    }
}

#[test]
fn special_ids_come_from_metadata() {
    let r = reference();
    let tok = Tokenizer::from_gguf_metadata(&metadata(&r)).expect("tokenizer builds");
    let sp = &r["special"];
    assert_eq!(tok.bos_id().map(u64::from), sp["bos_token_id"].as_u64());
    assert_eq!(tok.eos_id().map(u64::from), sp["eos_token_id"].as_u64());
    assert_eq!(tok.pad_id().map(u64::from), sp["padding_token_id"].as_u64());
    assert_eq!(tok.vocab_size(), 49152);
    let im_end = tok.token_to_id("<|im_end|>").expect("<|im_end|> in vocab");
    let eot = tok
        .token_to_id("<|endoftext|>")
        .expect("<|endoftext|> in vocab");
    assert_eq!(tok.eos_ids(), &[2, eot]);
    assert_eq!(im_end, 2);
    assert_eq!(tok.id_to_token(1).as_deref(), Some("<|im_start|>"));
}

#[test]
fn chat_template_renders_like_transformers() {
    let r = reference();
    let md = metadata(&r);
    let tok = Tokenizer::from_gguf_metadata(&md).expect("tokenizer builds");
    let tmpl = ChatTemplate::from_gguf_metadata(&md, &tok).expect("template compiles");
    let chats = r["chat"].as_array().expect("chat cases");
    assert!(chats.len() >= 4);
    for chat in chats {
        let name = s(&chat["name"]);
        let messages: Vec<ChatMessage> =
            serde_json::from_value(chat["messages"].clone()).expect("messages");
        let gen = chat["add_generation_prompt"].as_bool().expect("flag");
        let prompt = tmpl.render(&messages, gen).expect("renders");
        assert_eq!(prompt, s(&chat["prompt"]), "render {name}");
        assert_eq!(
            tok.encode(&prompt, false).expect("encode"),
            ids(&chat["ids"]),
            "prompt ids {name}"
        );
    }
}

/// Streaming the reference ids one at a time, after a chat prompt, gives exactly the
/// non-streaming decode (special tokens skipped), whatever splits multi-byte characters.
#[test]
fn incremental_detokenizer_reproduces_reference_decodes() {
    let r = reference();
    let tok = Arc::new(Tokenizer::from_gguf_metadata(&metadata(&r)).expect("tokenizer builds"));
    let prompt = ids(&r["chat"][0]["ids"]);
    for case in r["encode"].as_array().expect("encode cases") {
        let mut d = IncrementalDetokenizer::new(tok.clone(), &prompt);
        let mut out = String::new();
        for id in ids(&case["ids"]) {
            let piece = d.push(id);
            assert!(
                !piece.contains('\u{FFFD}'),
                "broken character streamed for {:?}",
                case["text"]
            );
            out.push_str(&piece);
        }
        out.push_str(&d.finish());
        assert_eq!(
            out,
            s(&case["decode_skip_special"]),
            "stream {:?}",
            case["text"]
        );
    }
}
