use std::sync::Arc;

use super::IncrementalDetokenizer;
use crate::gguf_tokenizer::Tokenizer;
use crate::test_util::{byte_id, synthetic_metadata};

fn tokenizer() -> Arc<Tokenizer> {
    Arc::new(
        Tokenizer::from_gguf_metadata(&synthetic_metadata("smollm"))
            .expect("synthetic tokenizer builds"),
    )
}

fn stream(detok: &mut IncrementalDetokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| detok.push(id)).collect()
}

#[test]
fn emoji_split_over_byte_tokens_is_emitted_once_complete() {
    let tok = tokenizer();
    let mut ids: Vec<u32> = "ok ".bytes().map(byte_id).collect();
    ids.extend("😀".bytes().map(byte_id));
    ids.push(byte_id(b'!'));
    let mut d = IncrementalDetokenizer::new(tok, &[1]);
    let out = stream(&mut d, &ids);
    assert_eq!(out, vec!["o", "k", " ", "", "", "", "😀", "!"]);
    assert_eq!(d.finish(), "");
}

#[test]
fn special_tokens_produce_no_text_when_skipped() {
    let tok = tokenizer();
    let hi = tok.encode(" hi", false).expect("encode");
    let mut ids = hi.clone();
    ids.push(2); // <|im_end|>
    let mut d = IncrementalDetokenizer::new(tok.clone(), &[]);
    assert_eq!(stream(&mut d, &ids).concat(), " hi");

    let mut d = IncrementalDetokenizer::new(tok, &[]).with_skip_special(false);
    assert_eq!(stream(&mut d, &ids).concat(), " hi<|im_end|>");
}

#[test]
fn stream_concatenation_equals_full_decode() {
    let tok = tokenizer();
    let text = "naïve café ü — 日本語 🎉🎉 hi\tend\n";
    let ids = tok.encode(text, false).expect("encode");
    let prompt = tok
        .encode("<|im_start|>assistant\n", false)
        .expect("encode");
    let mut d = IncrementalDetokenizer::new(tok.clone(), &prompt);
    let mut streamed = stream(&mut d, &ids).concat();
    streamed.push_str(&d.finish());
    assert_eq!(streamed, text);
    assert_eq!(tok.decode(&ids, true).expect("decode"), text);
}

#[test]
fn prompt_ending_mid_character_does_not_leak_into_output() {
    let tok = tokenizer();
    let euro: Vec<u32> = "€".bytes().map(byte_id).collect();
    // The prompt holds the first byte of '€'; generation starts with plain ASCII.
    let mut d = IncrementalDetokenizer::new(tok, &euro[..1]);
    assert_eq!(d.push(byte_id(b'a')), "a");
}

#[test]
fn finish_flushes_an_incomplete_character() {
    let tok = tokenizer();
    let euro: Vec<u32> = "€".bytes().map(byte_id).collect();
    let mut d = IncrementalDetokenizer::new(tok, &[]);
    assert_eq!(d.push(euro[0]), "");
    assert_eq!(d.push(euro[1]), "");
    assert_eq!(d.finish(), "\u{FFFD}");
}

#[test]
fn long_streams_stay_correct_after_compaction() {
    let tok = tokenizer();
    let text = "ab€ ".repeat(300);
    let ids = tok.encode(&text, false).expect("encode");
    let mut d = IncrementalDetokenizer::new(tok, &[]);
    let mut out = stream(&mut d, &ids).concat();
    out.push_str(&d.finish());
    assert_eq!(out, text);
    assert!(
        d.ids.len() < 300,
        "window compacted, {} ids kept",
        d.ids.len()
    );
}
