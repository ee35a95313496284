//! Function tools on /v1/responses: the Responses shapes (flat `{type, name,
//! parameters}` tools, `{type, name}` choices, `function_call` items) mapped onto
//! the chat side's `ToolRequest`, and answers split into output items.

use hearth_engine::FinishReason;
use hearth_text::tool_parsers::{parse_whole, ToolParserKind};
use serde_json::{json, Value};

use super::super::tools::call_id;
use crate::error::ApiError;
use crate::generate::new_id;

/// Responses tools as chat tools (`{"type":"function","function":{...}}`).
pub fn chat_tools(tools: &[Value]) -> Result<Vec<Value>, ApiError> {
    tools
        .iter()
        .map(|t| {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "function" {
                return Err(ApiError::invalid_param(
                    "tools",
                    format!("tools of type `{kind}` are not supported (only function tools)"),
                ));
            }
            let mut function = serde_json::Map::new();
            for key in ["name", "description", "parameters", "strict"] {
                if let Some(v) = t.get(key) {
                    function.insert(key.to_string(), v.clone());
                }
            }
            Ok(json!({ "type": "function", "function": function }))
        })
        .collect()
}

/// A Responses `tool_choice` as a chat one (`{"type":"function","name":..}` nests).
pub fn chat_tool_choice(choice: &Value) -> Value {
    match (
        choice.get("type").and_then(Value::as_str),
        choice.get("name"),
    ) {
        (Some("function"), Some(name)) => {
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => choice.clone(),
    }
}

/// One `function_call` output item (`id` is the item's, `call` the call's).
pub fn call_item(id: &str, call: &str, name: &str, arguments: &str, done: bool) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call,
        "name": name,
        "arguments": arguments,
        "status": if done { "completed" } else { "in_progress" },
    })
}

/// A whole answer's output items: its text (as a message item, unless the answer is
/// only calls) then one item per call.
pub fn output_items(
    text: &str,
    parser: Option<ToolParserKind>,
    parallel: bool,
    message_item: impl Fn(&str) -> Value,
) -> Vec<Value> {
    let Some(kind) = parser else {
        return vec![message_item(text)];
    };
    let mut parsed = parse_whole(kind.new_parser().as_mut(), text);
    if !parallel {
        parsed.calls.truncate(1);
    }
    let mut items = Vec::new();
    let content = parsed.content.trim();
    if !content.is_empty() || parsed.calls.is_empty() {
        items.push(message_item(&parsed.content));
    }
    for c in &parsed.calls {
        items.push(call_item(
            &new_id("fc"),
            &call_id(),
            &c.name,
            &c.arguments,
            true,
        ));
    }
    items
}

/// A finished answer with calls is complete even when it stopped on a call.
pub fn incomplete(reason: FinishReason, items: &[Value]) -> bool {
    reason == FinishReason::Length && !items.iter().any(|i| i["type"] == "function_call")
}
