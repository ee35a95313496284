//! hearth-text against Hugging Face transformers on a tiny SentencePiece (`llama`
//! tokenizer model) GGUF: encode, decode and streaming must match the committed
//! reference (tests/fixtures/spm_reference.json and spm_tiny.gguf, made by
//! scripts/reference/spm_reference.py).

use std::sync::Arc;

use hearth_text::{IncrementalDetokenizer, Tokenizer};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn reference() -> Json {
    let text = std::fs::read_to_string(format!("{FIXTURES}/spm_reference.json"))
        .expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The tokenizer of the fixture GGUF, after checking it is the file the reference used.
fn tokenizer(r: &Json) -> Tokenizer {
    let path = format!("{FIXTURES}/{}", s(&r["gguf"]["file"]));
    let bytes = std::fs::read(&path).expect("fixture GGUF readable");
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        s(&r["gguf"]["sha256"]),
        "{path}"
    );
    Tokenizer::from_gguf_file(&path).expect("SentencePiece tokenizer builds")
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

fn cases(r: &Json) -> &Vec<Json> {
    let c = r["encode"].as_array().expect("encode cases");
    assert!(c.len() >= 20);
    c
}

#[test]
fn encode_matches_transformers() {
    let r = reference();
    let tok = tokenizer(&r);
    for case in cases(&r) {
        let text = s(&case["text"]);
        let got = tok.encode(text, false).expect("encode");
        assert_eq!(got, ids(&case["ids"]), "encode {text:?}");
        let got = tok.encode(text, true).expect("encode");
        assert_eq!(
            got,
            ids(&case["ids_with_special"]),
            "encode+special {text:?}"
        );
    }
}

#[test]
fn decode_matches_transformers() {
    let r = reference();
    let tok = tokenizer(&r);
    for case in cases(&r) {
        let text = s(&case["text"]);
        let want = ids(&case["ids"]);
        let got = tok.decode(&want, false).expect("decode");
        assert_eq!(got, s(&case["decode"]), "decode {text:?}");
        let got = tok.decode(&want, true).expect("decode");
        assert_eq!(got, s(&case["decode_skip_special"]), "decode skip {text:?}");
    }
}

#[test]
fn special_ids_come_from_the_gguf() {
    let r = reference();
    let tok = tokenizer(&r);
    let sp = &r["special"];
    assert_eq!(tok.bos_id(), sp["bos_token_id"].as_u64().map(|x| x as u32));
    assert_eq!(tok.eos_id(), sp["eos_token_id"].as_u64().map(|x| x as u32));
    assert!(tok.adds_bos());
    assert_eq!(tok.token_to_id("<end_of_turn>"), Some(4));
    // `<end_of_turn>` is a known end-of-turn token, so it stops generation too.
    assert!(tok.eos_ids().contains(&4));
}

/// Streams `ids` one at a time after `prompt` and returns the concatenated text.
fn stream(tok: &Arc<Tokenizer>, prompt: &[u32], ids: &[u32], skip: bool, text: &str) -> String {
    let mut d = IncrementalDetokenizer::new(tok.clone(), prompt).with_skip_special(skip);
    let mut out = String::new();
    for &id in ids {
        let piece = d.push(id);
        assert!(
            !piece.contains('\u{FFFD}'),
            "broken character streamed for {text:?}"
        );
        out.push_str(&piece);
    }
    out.push_str(&d.finish());
    out
}

/// Streaming gives exactly the non-streaming decode, byte-fallback characters included,
/// from the start and after a BOS prompt.
#[test]
fn incremental_detokenizer_reproduces_reference_decodes() {
    let r = reference();
    let tok = Arc::new(tokenizer(&r));
    let bos = [tok.bos_id().expect("bos")];
    for case in cases(&r) {
        let text = s(&case["text"]);
        let ids = ids(&case["ids"]);
        let skipped = s(&case["decode_skip_special"]);
        assert_eq!(stream(&tok, &[], &ids, true, text), skipped, "{text:?}");
        assert_eq!(
            stream(&tok, &bos, &ids, true, text),
            skipped,
            "{text:?} after BOS"
        );
        let full = s(&case["decode"]);
        assert_eq!(
            stream(&tok, &[], &ids, false, text),
            full,
            "{text:?} with special"
        );
    }
}
