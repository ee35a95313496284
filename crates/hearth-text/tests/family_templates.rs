//! hearth's chat-template render against Hugging Face transformers' `apply_chat_template`
//! on the model families' real templates (Llama 3.x, Qwen2.5, Qwen3, Gemma 3): every case
//! must match byte for byte, and conversations the template rejects must fail in hearth
//! too. Fixture: tests/fixtures/family_templates.json, made by
//! scripts/reference/template_reference.py from templates shipped in pinned PyPI packages.

use hearth_text::{ChatMessage, ChatTemplate};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn fixture() -> Json {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/family_templates.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn messages(case: &Json) -> Vec<ChatMessage> {
    serde_json::from_value(case["messages"].clone()).expect("messages are role/content")
}

#[test]
fn families_render_like_transformers() {
    let fx = fixture();
    let families = fx["families"].as_array().expect("families list");
    let names: Vec<&str> = families
        .iter()
        .filter_map(|f| f["family"].as_str())
        .collect();
    for want in [
        "llama3", "llama3.1", "llama3.2", "llama3.3", "qwen2.5", "qwen3",
    ] {
        assert!(names.contains(&want), "fixture lacks {want}: {names:?}");
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for fam in families {
        let name = fam["family"].as_str().expect("family name");
        let source = fam["template"].as_str().expect("template text");
        // The copy in the fixture is the template the pinned package ships.
        let sha = hex::encode(Sha256::digest(source.as_bytes()));
        assert_eq!(
            Some(sha.as_str()),
            fam["source"]["template_sha256"].as_str(),
            "{name}: template text differs from its recorded source"
        );
        let bos = fam["bos_token"].as_str().unwrap_or_default();
        let eos = fam["eos_token"].as_str().unwrap_or_default();
        let tmpl = ChatTemplate::new(source, bos, eos).expect("template compiles");
        for case in fam["cases"].as_array().expect("cases") {
            let cname = case["name"].as_str().expect("case name");
            let gen = case["add_generation_prompt"].as_bool().expect("flag");
            let extra = case["extra"].as_object().cloned().unwrap_or_default();
            let rendered = tmpl.render_with(&messages(case), gen, &extra);
            if let Some(err) = case["expected_error"].as_str() {
                match rendered {
                    Err(e) if e.to_string().contains(err) => {}
                    other => {
                        failures.push(format!("{name}/{cname}: want error {err:?}, got {other:?}"))
                    }
                }
                checked += 1;
                continue;
            }
            let want = case["expected"].as_str().expect("expected text");
            match rendered {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!("{name}/{cname}:\n got {got:?}\nwant {want:?}")),
                Err(e) => failures.push(format!("{name}/{cname}: error {e}")),
            }
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} cases in the fixture");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
