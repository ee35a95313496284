//! Tool-calling conversations (tool definitions, assistant `tool_calls`, `tool` results,
//! parallel calls) rendered by hearth vs Hugging Face transformers' `apply_chat_template`
//! on the real Llama 3.1/3.2, Qwen2.5 and Qwen3 templates: byte for byte, and the
//! same refusals (Llama 3.x allows one call per turn). Fixture made by
//! scripts/reference/tool_template_reference.py (templates from family_templates.json).

use hearth_text::{ChatMessage, ChatTemplate};
use serde_json::Value as Json;

fn read(name: &str) -> Json {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

#[test]
fn tool_conversations_render_like_transformers() {
    let templates = read("family_templates.json");
    let fx = read("tool_templates.json");
    let mut failures = Vec::new();
    let mut checked = 0;
    for fam in fx["families"].as_array().expect("families") {
        let name = fam["family"].as_str().expect("name");
        let spec = templates["families"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["family"] == name))
            .expect("template of the family");
        let tmpl = ChatTemplate::new(
            spec["template"].as_str().expect("template"),
            spec["bos_token"].as_str().unwrap_or_default(),
            spec["eos_token"].as_str().unwrap_or_default(),
        )
        .expect("compiles");
        for case in fam["cases"].as_array().expect("cases") {
            let cname = case["name"].as_str().expect("case name");
            let messages: Vec<ChatMessage> =
                serde_json::from_value(case["messages"].clone()).expect("messages");
            // hearth's messages serialize back to exactly what transformers was given.
            assert_eq!(
                serde_json::to_value(&messages).expect("serialize"),
                case["messages"],
                "{name}/{cname}"
            );
            let tools = case["tools"].as_array().map(Vec::as_slice);
            let extra = case["extra"].as_object().cloned().unwrap_or_default();
            let gen = case["add_generation_prompt"].as_bool().expect("flag");
            let got = tmpl.render_with_tools(&messages, gen, tools, &extra);
            checked += 1;
            match (
                got,
                case["expected"].as_str(),
                case["expected_error"].as_str(),
            ) {
                (Ok(got), Some(want), _) if got == want => {}
                (Ok(got), Some(want), _) => {
                    failures.push(format!("{name}/{cname}:\n got {got:?}\nwant {want:?}"))
                }
                (Err(e), None, Some(want)) if e.to_string().contains(want) => {}
                (other, _, _) => failures.push(format!("{name}/{cname}: {other:?}")),
            }
        }
    }
    assert!(checked >= 24, "only {checked} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
