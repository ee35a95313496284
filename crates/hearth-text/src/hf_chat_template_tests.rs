use std::path::{Path, PathBuf};

use super::*;
use crate::chat_template::ChatMessage;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_tiny")
}

fn renders() -> Value {
    let text = std::fs::read_to_string(fixture().join("renders.json")).expect("renders.json");
    serde_json::from_str(&text).expect("json")
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(v.clone()).expect("messages")
}

/// Every conversation transformers rendered (Llama 3.x-, Qwen2.5- and Qwen3-style
/// templates; system prompt, multi-turn, generation prompt, enable_thinking unset,
/// false and true) renders to the same text here.
#[test]
fn renders_equal_transformers() {
    let r = renders();
    let entries = r["renders"].as_array().expect("renders");
    assert!(entries.len() >= 20, "fixture has the renders");
    for e in entries {
        let name = e["template"].as_str().expect("name");
        let src = r["templates"][name].as_str().expect("template");
        let t = ChatTemplate::new(src, "<|begin_of_text|>", "<|im_end|>").expect("compiles");
        let agp = e["add_generation_prompt"].as_bool().expect("bool");
        let kwargs = e["kwargs"].as_object().expect("kwargs");
        let got = t
            .render_with(&messages(&e["messages"]), agp, kwargs)
            .expect("renders");
        assert_eq!(
            got,
            e["expected"].as_str().expect("expected"),
            "{name} / {} / agp {agp} / {kwargs:?}",
            e["conversation"]
        );
    }
}

/// from_hf_dir takes the config's template (Qwen3-style) and its BOS/EOS strings.
#[test]
fn from_hf_dir_uses_the_config_template() {
    let tok = Tokenizer::from_hf_dir(fixture()).expect("tokenizer");
    let t = ChatTemplate::from_hf_dir(fixture(), &tok).expect("template");
    let r = renders();
    let e = r["renders"]
        .as_array()
        .expect("renders")
        .iter()
        .find(|e| {
            e["template"] == "qwen3"
                && e["conversation"] == "multi_turn"
                && e["add_generation_prompt"] == true
                && e["kwargs"].as_object().is_some_and(|k| k.is_empty())
        })
        .expect("entry");
    let got = t.render(&messages(&e["messages"]), true).expect("renders");
    assert_eq!(got, e["expected"].as_str().expect("expected"));
}

fn write_config(dir: &Path, chat_template: Option<Value>) {
    let src = fixture().join("tokenizer_config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src).expect("read")).expect("json");
    let obj = cfg.as_object_mut().expect("object");
    match chat_template {
        Some(v) => obj.insert("chat_template".into(), v),
        None => obj.remove("chat_template"),
    };
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).expect("write");
}

#[test]
fn list_form_picks_default_and_jinja_file_is_the_fallback() {
    let dir = crate::hf_tokenizer::tests::copy_fixture("tmpl");
    let tok = Tokenizer::from_hf_dir(&dir).expect("tokenizer");
    let msgs = [ChatMessage::new("user", "hi")];

    write_config(
        &dir,
        Some(serde_json::json!([
            {"name": "tool_use", "template": "TOOLS"},
            {"name": "default", "template": "{{ bos_token }}D{{ messages[0].content }}{{ eos_token }}"}
        ])),
    );
    let t = ChatTemplate::from_hf_dir(&dir, &tok).expect("template");
    assert_eq!(
        t.render(&msgs, false).expect("renders"),
        "<|begin_of_text|>Dhi<|im_end|>"
    );

    write_config(&dir, None);
    assert!(matches!(
        ChatTemplate::from_hf_dir(&dir, &tok),
        Err(TextError::MissingMetadata(_))
    ));
    std::fs::write(
        dir.join("chat_template.jinja"),
        "J{{ messages[0].content }}",
    )
    .expect("write");
    let t = ChatTemplate::from_hf_dir(&dir, &tok).expect("template");
    assert_eq!(t.render(&msgs, false).expect("renders"), "Jhi");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn extra_variables_do_not_replace_the_fixed_ones() {
    let t = ChatTemplate::new(
        "{{ messages|length }}{{ add_generation_prompt }}{{ enable_thinking }}",
        "",
        "",
    )
    .expect("compiles");
    let extra = serde_json::json!({"messages": [], "add_generation_prompt": false, "enable_thinking": false});
    let got = t
        .render_with(
            &[ChatMessage::new("user", "x")],
            true,
            extra.as_object().expect("object"),
        )
        .expect("renders");
    assert_eq!(
        got, "1TrueFalse",
        "Python-style booleans, as jinja2 prints them"
    );
}
