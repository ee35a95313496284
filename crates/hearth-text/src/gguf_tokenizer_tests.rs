use candle_core::quantized::gguf_file::Value;

use super::Tokenizer;
use crate::error::TextError;
use crate::test_util::{byte_id, synthetic_metadata};

fn build(pre: &str) -> Tokenizer {
    Tokenizer::from_gguf_metadata(&synthetic_metadata(pre)).expect("synthetic tokenizer builds")
}

#[test]
fn merges_apply_and_special_tokens_are_single_ids() {
    let t = build("smollm");
    let hi = t.token_to_id("Ġhi").expect("merged token");
    assert_eq!(t.encode(" hi", false).expect("encode"), vec![hi]);
    let ids = t.encode("<|im_start|>x<|im_end|>", false).expect("encode");
    assert_eq!(ids, vec![1, byte_id(b'x'), 2]);
    assert_eq!(
        t.encode("a<tool>b", false).expect("encode"),
        vec![byte_id(b'a'), 3, byte_id(b'b')]
    );
}

#[test]
fn skip_special_drops_control_but_keeps_user_defined() {
    let t = build("smollm");
    let ids = [1, byte_id(b'x'), 3, 2];
    assert_eq!(t.decode(&ids, true).expect("decode"), "x<tool>");
    assert_eq!(
        t.decode(&ids, false).expect("decode"),
        "<|im_start|>x<tool><|im_end|>"
    );
}

#[test]
fn bos_is_added_only_when_the_model_asks() {
    let t = build("smollm");
    assert_eq!(t.encode("a", true).expect("encode"), vec![byte_id(b'a')]);
    let mut md = synthetic_metadata("smollm");
    md.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
    let t = Tokenizer::from_gguf_metadata(&md).expect("builds");
    assert_eq!(t.encode("a", true).expect("encode"), vec![1, byte_id(b'a')]);
    assert_eq!(t.encode("a", false).expect("encode"), vec![byte_id(b'a')]);
}

#[test]
fn eos_ids_hold_eos_then_end_of_turn_tokens() {
    let t = build("smollm");
    assert_eq!(t.eos_ids(), &[2, 0]);
    assert_eq!(t.bos_id(), Some(1));
    assert_eq!(t.vocab_size(), 262);
}

#[test]
fn every_known_pre_builds() {
    for pre in [
        "smollm",
        "llama-bpe",
        "qwen2",
        "gpt-4o",
        "default",
        "something-new",
    ] {
        let t = build(pre);
        assert_eq!(
            t.decode(&t.encode("Hi 2024!\n", false).expect("encode"), false)
                .expect("decode"),
            "Hi 2024!\n"
        );
    }
}

#[test]
fn sentencepiece_needs_scores_and_unknown_models_are_unsupported() {
    let mut md = synthetic_metadata("default");
    md.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TextError::MissingMetadata(k)) if k == "tokenizer.ggml.scores"
    ));
    md.insert("tokenizer.ggml.model".into(), Value::String("rwkv".into()));
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TextError::Unsupported(_))
    ));
}

#[test]
fn bad_metadata_is_an_error() {
    let mut md = synthetic_metadata("default");
    md.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(vec![Value::String("nospace".into())]),
    );
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TextError::InvalidMetadata { .. })
    ));
    let mut md = synthetic_metadata("default");
    md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1_000_000));
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TextError::InvalidMetadata { .. })
    ));
    let mut md = synthetic_metadata("default");
    md.remove("tokenizer.ggml.tokens");
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TextError::MissingMetadata(_))
    ));
}
