use std::path::{Path, PathBuf};

use super::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_tiny")
}

fn renders() -> Value {
    let text = std::fs::read_to_string(fixture().join("renders.json")).expect("renders.json");
    serde_json::from_str(&text).expect("json")
}

/// A temp copy of the fixture folder, so a test can change one file.
pub(crate) fn copy_fixture(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-hf-tok-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(fixture().join(f), dir.join(f)).expect("copy");
    }
    dir
}

#[test]
fn special_ids_from_the_configs() {
    let t = Tokenizer::from_hf_dir(fixture()).expect("loads");
    let id = |s: &str| t.token_to_id(s).expect("in vocab");
    assert_eq!(
        t.bos_id(),
        Some(id("<|begin_of_text|>")),
        "bos as AddedToken object"
    );
    assert_eq!(t.eos_id(), Some(id("<|im_end|>")));
    // generation_config.json lists <|im_end|> and <|endoftext|>: both stop.
    assert_eq!(t.eos_ids(), &[id("<|im_end|>"), id("<|endoftext|>")]);
    assert_eq!(t.pad_id(), Some(id("<|endoftext|>")));
    assert!(!t.adds_bos(), "add_bos_token is false");
    assert_eq!(t.vocab_size(), 256, "the tiny models' vocabulary");
}

#[test]
fn encodes_like_transformers() {
    let t = Tokenizer::from_hf_dir(fixture()).expect("loads");
    let r = renders();
    let text = r["encode"]["text"].as_str().expect("text");
    let want: Vec<u32> = serde_json::from_value(r["encode"]["ids"].clone()).expect("ids");
    assert_eq!(t.encode(text, true).expect("encodes"), want);
    let back = t.decode(&want, true).expect("decodes");
    assert_eq!(
        back, "Hello there, how are you?",
        "special <|im_end|> skipped"
    );
}

#[test]
fn add_bos_flag_and_single_eos_id() {
    let dir = copy_fixture("bos");
    let cfg_path = dir.join("tokenizer_config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).expect("read")).expect("json");
    cfg["add_bos_token"] = Value::Bool(true);
    std::fs::write(&cfg_path, cfg.to_string()).expect("write");
    std::fs::write(dir.join("generation_config.json"), r#"{"eos_token_id": 2}"#).expect("write");
    let t = Tokenizer::from_hf_dir(&dir).expect("loads");
    let ids = t.encode("Hello", true).expect("encodes");
    assert_eq!(ids.first().copied(), t.bos_id());
    let end = t.token_to_id("<|im_end|>").expect("id");
    assert_eq!(t.eos_ids(), &[end, 2]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_tokenizer_json_is_an_error() {
    let dir = std::env::temp_dir().join(format!("hearth-hf-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    assert!(matches!(
        Tokenizer::from_hf_dir(&dir),
        Err(TextError::Tokenizer(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Llama 3 folders add BOS in tokenizer.json's post-processor and write no
/// add_bos_token: BOS comes once, from hearth's side.
#[test]
fn bos_from_the_post_processor() {
    let dir = copy_fixture("post");
    let path = dir.join("tokenizer.json");
    let mut tj: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let t0 = Tokenizer::from_hf_dir(&dir).expect("loads");
    let bos = t0.bos_id().expect("bos");
    tj["post_processor"] = serde_json::json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos],
                           "tokens": ["<|begin_of_text|>"]}}
    });
    std::fs::write(&path, tj.to_string()).expect("write");
    let cfg_path = dir.join("tokenizer_config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).expect("read")).expect("json");
    cfg.as_object_mut().expect("object").remove("add_bos_token");
    std::fs::write(&cfg_path, cfg.to_string()).expect("write");

    let t = Tokenizer::from_hf_dir(&dir).expect("loads");
    assert!(t.adds_bos());
    let with = t.encode("Hello", true).expect("encodes");
    let without = t.encode("Hello", false).expect("encodes");
    assert_eq!(with[0], bos);
    assert_eq!(
        &with[1..],
        &without[..],
        "one BOS, none without special tokens"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
