//! SentencePiece-style tokenizers (BPE with byte fallback, as Gemma ships) written to
//! GGUF by `hearth quantize`: llama.cpp's `llama` tokenizer model with scores made from
//! the merges. Checked against the real SentencePiece on the tiny fixture
//! (hearth-text's spm_reference.json), and end to end on a Gemma 3 folder.

use hearth_text::Tokenizer;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn text_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hearth-text/tests/fixtures")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-spm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn ids(v: &Value) -> Vec<u32> {
    let a = v.as_array().expect("ids");
    a.iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// GGUF (tiny SentencePiece model) -> tokenizer.json -> GGUF metadata again: the
/// rebuilt tokenizer still encodes as the reference did, ids and specials alike.
#[test]
fn sentencepiece_vocab_survives_tokenizer_json_to_gguf() {
    let fx = text_fixtures();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fx.join("spm_reference.json")).expect("reference"),
    )
    .expect("json");
    let original = Tokenizer::from_gguf_file(fx.join("spm_tiny.gguf")).expect("tokenizer");
    let dir = temp_dir("roundtrip");
    let json = original.hf().to_string(false).expect("tokenizer.json");
    std::fs::write(dir.join("tokenizer.json"), json).expect("write");
    let name = |id: Option<u32>| original.id_to_token(id.expect("special id")).expect("name");
    let tc = json!({"bos_token": name(original.bos_id()), "eos_token": name(original.eos_id()),
                    "add_bos_token": true});
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).expect("write");

    let md = hearth_models::hf_vocab_meta::tokenizer_metadata(
        &dir,
        &json!({}),
        "llama",
        original.vocab_size(),
    )
    .expect("metadata");
    let _ = std::fs::remove_dir_all(&dir);
    let md: HashMap<_, _> = md.into_iter().collect();
    let rebuilt = Tokenizer::from_gguf_metadata(&md).expect("rebuilt tokenizer");
    let cases = reference["encode"].as_array().expect("cases");
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let got = rebuilt.encode(text, false).expect("encode");
        // Transformers' ids (control tokens in text are one id; SentencePiece itself
        // spells them out, which is the only place its ids differ).
        assert_eq!(got, ids(&case["ids"]), "{text:?}");
        let got = rebuilt.encode(text, true).expect("encode");
        assert_eq!(
            got,
            ids(&case["ids_with_special"]),
            "{text:?} with specials"
        );
        assert_eq!(
            rebuilt.decode(&got, true).expect("decode"),
            case["decode_skip_special"].as_str().expect("decode"),
        );
    }
    assert_eq!(
        (rebuilt.bos_id(), rebuilt.eos_id()),
        (original.bos_id(), original.eos_id())
    );
}

/// A Gemma-style tokenizer.json small enough for the tiny Gemma 3 fixture's 256 rows:
/// no space prefix, byte fallback, merges listed best first.
fn gemma_style_tokenizer(dir: &Path) {
    let pieces = [
        "<pad>", "<eos>", "<bos>", "<unk>", "▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll",
        "hell", "hello", "▁w", "or", "▁wor", "▁world", "ld", "▁h", "▁hello",
    ];
    let vocab: serde_json::Map<String, Value> = (pieces.iter().enumerate())
        .map(|(i, p)| (p.to_string(), json!(i)))
        .collect();
    let merges = [
        "h e",
        "l l",
        "he ll",
        "hell o",
        "▁ w",
        "o r",
        "▁w or",
        "l d",
        "▁wor ld",
        "▁ h",
        "▁ hello",
    ];
    let special = |id: usize| {
        json!({"id": id, "content": pieces[id], "single_word": false,
        "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    let tok = json!({
        "version": "1.0",
        "added_tokens": [special(0), special(1), special(2), special(3)],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).expect("write");
    let tc = json!({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                    "unk_token": "<unk>", "add_bos_token": true});
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).expect("write");
}

/// `hearth quantize` on a Gemma 3 folder with a SentencePiece tokenizer: the GGUF's
/// tokenizer encodes as the folder's does.
#[test]
fn gemma3_folder_with_its_tokenizer_converts() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-models/tests/fixtures/tiny/gemma3");
    let dir = temp_dir("gemma3");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), dir.join(f)).expect("copy fixture");
    }
    gemma_style_tokenizer(&dir);
    let out = dir.join("model.gguf");
    let run = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "quantize",
            dir.to_str().expect("path"),
            "--type",
            "f32",
            "-o",
        ])
        .arg(&out)
        .output()
        .expect("run hearth quantize");
    let text = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{text}");

    let folder = Tokenizer::from_hf_dir(&dir).expect("folder tokenizer");
    let gguf = Tokenizer::from_gguf_file(&out).expect("GGUF tokenizer");
    for s in [
        "hello world",
        "hello",
        " world hello",
        "held",
        "<bos>hello",
        "hi 🙂",
    ] {
        assert_eq!(
            gguf.encode(s, true).expect("gguf"),
            folder.encode(s, true).expect("folder"),
            "{s:?}"
        );
    }
    assert_eq!(gguf.encode("hello world", false).expect("ids"), [15, 19]);
    assert_eq!((gguf.bos_id(), gguf.eos_id()), (Some(2), Some(1)));
    let _ = std::fs::remove_dir_all(&dir);
}
