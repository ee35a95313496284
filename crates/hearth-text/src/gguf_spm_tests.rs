use candle_core::quantized::gguf_file::Value;

use super::*;

fn score_map<'a>(pairs: &[(&'a str, f32)]) -> HashMap<&'a str, f32> {
    pairs.iter().copied().collect()
}

fn pairs(m: &Merges) -> Vec<(&str, &str)> {
    m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[test]
fn merges_rank_by_token_score_then_part_scores() {
    let toks = ["a", "b", "c", "abc", "ab", "bc"];
    let s = score_map(&[
        ("a", -10.0),
        ("b", -11.0),
        ("c", -12.0),
        ("abc", -3.0),
        ("ab", -1.0),
        ("bc", -2.0),
    ]);
    // `abc` splits two ways: (ab, c) first, its left part scoring higher.
    assert_eq!(
        pairs(&merges_from_scores(&toks, &s)),
        [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]
    );
}

#[test]
fn equal_scores_keep_vocabulary_order_and_negative_zero_equals_zero() {
    let toks = ["x", "y", "yx", "xy"];
    let s = score_map(&[("x", 0.0), ("y", 0.0), ("yx", -0.0), ("xy", 0.0)]);
    assert_eq!(
        pairs(&merges_from_scores(&toks, &s)),
        [("y", "x"), ("x", "y")]
    );
}

fn strings(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

/// Tokens: 0 `<unk>`, 1 `<s>`, 2 `</s>`, 3 `▁`, 4 `h`, 5 `i`, 6 `▁h`, 7 `▁hi`, 8 `<0x21>`.
fn metadata(with_types: bool) -> Metadata {
    let toks = ["<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "▁hi", "<0x21>"];
    let scores = [0.0f32, 0.0, 0.0, -5.0, -6.0, -7.0, -1.0, -2.0, 0.0];
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    md.insert("tokenizer.ggml.tokens".into(), strings(&toks));
    md.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(scores.iter().map(|x| Value::F32(*x)).collect()),
    );
    if with_types {
        let types = [2i32, 3, 3, 1, 1, 1, 1, 1, 6];
        md.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|x| Value::I32(*x)).collect()),
        );
    }
    md.insert("tokenizer.ggml.unknown_token_id".into(), Value::U32(0));
    md.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1));
    md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
    md
}

#[test]
fn space_prefix_byte_fallback_and_specials() {
    for with_types in [true, false] {
        let t = build(&metadata(with_types)).expect("builds");
        // "hi" gets the space prefix and merges to `▁hi`; `!` falls back to its byte;
        // the text after `</s>` gets its own `▁` prefix (transformers' legacy mode), and
        // `é` has no byte tokens, so it is the unknown token.
        let enc = t.encode_fast("hi!</s>é", false).expect("encode");
        assert_eq!(enc.get_ids(), [7, 8, 2, 3, 0], "types: {with_types}");
        assert_eq!(
            t.decode(&[1, 7, 8, 2], false).expect("decode"),
            "<s> hi!</s>"
        );
        assert_eq!(t.decode(&[1, 7, 8, 0, 2], true).expect("decode"), "hi!");
    }
}

#[test]
fn no_space_prefix_when_the_gguf_says_so() {
    let mut md = metadata(true);
    md.insert("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false));
    let t = build(&md).expect("builds");
    assert_eq!(
        t.encode_fast("hi", false).expect("encode").get_ids(),
        [4, 5]
    );
    assert_eq!(t.decode(&[3, 4, 5], false).expect("decode"), " hi");
}

#[test]
fn scores_must_match_tokens() {
    let mut md = metadata(true);
    md.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(vec![Value::F32(0.0)]),
    );
    assert!(matches!(build(&md), Err(TextError::InvalidMetadata { .. })));
}
