//! The grammar that forces a tool call (`tool_choice` required or named): one call in
//! the parser family's own wrapper, its arguments held to the tool's JSON schema.

use hearth_text::tool_parsers::ToolParserKind;
use hearth_text::ConstraintSpec;
use serde_json::{json, Map, Value};

use super::tools::{FunctionTool, ToolRequest};

/// The constraint of a request whose tool_choice forces a call (`required` or a
/// named function) on a server that can parse calls.
pub fn forced_call(
    tools: Option<&ToolRequest>,
    parser: Option<ToolParserKind>,
) -> Option<ConstraintSpec> {
    let kind = parser?;
    let forced = tools?.forced()?;
    Some(forced_call_grammar(kind, &forced))
}

/// A Lark grammar for exactly one call of one of `tools`, written in the parser
/// family's own wrapper, the arguments held to the tool's schema (llguidance's
/// `%json`), compact like the model's template shows calls.
pub fn forced_call_grammar(kind: ToolParserKind, tools: &[&FunctionTool]) -> ConstraintSpec {
    let mut lark = String::from("start: ");
    let alts: Vec<String> = (0..tools.len()).map(|i| format!("call_{i}")).collect();
    lark.push_str(&alts.join(" | "));
    lark.push('\n');
    for (i, t) in tools.iter().enumerate() {
        let (before, after) = match kind {
            ToolParserKind::Hermes => (
                format!("<tool_call>\n{{\"name\": \"{}\", \"arguments\": ", t.name),
                "}\n</tool_call>",
            ),
            ToolParserKind::Llama3Json => {
                (format!("{{\"name\": \"{}\", \"parameters\": ", t.name), "}")
            }
            ToolParserKind::Mistral => (
                // No `[TOOL_CALLS]`: a special token, which text cannot spell; the parser
                // takes an array that opens the answer as the calls.
                format!("[{{\"name\": \"{}\", \"arguments\": ", t.name),
                "}]",
            ),
        };
        let quote = |s: &str| Value::String(s.to_string()).to_string();
        lark.push_str(&format!(
            "call_{i}: {} args_{i} {}\n",
            quote(&before),
            quote(after)
        ));
        lark.push_str(&format!(
            "args_{i}: %json {}\n",
            guided_schema(&t.parameters)
        ));
    }
    ConstraintSpec::Lark(lark)
}

/// The schema with llguidance's layout options: no free whitespace (a small model
/// cannot wander into newlines), `, ` and `: ` as Python's json.dumps writes them.
fn guided_schema(schema: &Value) -> Value {
    let mut s = match schema {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    s.entry("x-guidance").or_insert_with(|| {
        json!({
            "whitespace_flexible": false,
            "item_separator": ", ",
            "key_separator": ": ",
            "lenient": true,
        })
    });
    Value::Object(s)
}
