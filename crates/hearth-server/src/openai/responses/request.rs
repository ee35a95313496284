//! The body of POST /v1/responses and how its `input` becomes a conversation.

use hearth_text::{ChatMessage, ToolCall};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResponsesRequest {
    #[schema(example = "default")]
    pub model: String,
    pub input: InputField,
    /// A system message placed before everything else.
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stream: Option<bool>,
    /// Keep the response for `previous_response_id` (OpenAI's default: true).
    pub store: Option<bool>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub text: Option<Value>,
    pub metadata: Option<Value>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum InputField {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item: a message (`type` "message" or left out), a `function_call` the
/// model made earlier, or a `function_call_output` with its result. Other item
/// types are refused by `to_messages`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InputItem {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub role: Option<String>,
    pub content: Option<ItemContent>,
    pub call_id: Option<String>,
    pub name: Option<String>,
    /// A call's arguments (JSON text).
    pub arguments: Option<String>,
    /// A call's result.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ItemContent {
    Text(String),
    Parts(Vec<ItemPart>),
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ItemPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];

/// `input` as chat messages; `developer` is the template's `system`.
pub fn to_messages(input: &InputField) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match input {
        InputField::Text(t) => return Ok(vec![ChatMessage::new("user", t.clone())]),
        InputField::Items(items) => items,
    };
    if items.is_empty() {
        return Err(ApiError::invalid_param("input", "input must not be empty"));
    }
    let mut msgs: Vec<ChatMessage> = Vec::new();
    for item in items {
        match item.kind.as_deref().unwrap_or("message") {
            "function_call" => add_call(&mut msgs, item)?,
            "function_call_output" => msgs.push(call_output(&msgs, item)?),
            _ => msgs.push(item_message(item)?),
        }
    }
    Ok(msgs)
}

/// A call joins the assistant turn of the calls just before it, or starts one.
fn add_call(msgs: &mut Vec<ChatMessage>, item: &InputItem) -> Result<(), ApiError> {
    let (Some(call_id), Some(name)) = (&item.call_id, &item.name) else {
        return Err(ApiError::invalid_param(
            "input",
            "a function_call item needs call_id and name",
        ));
    };
    let raw = item.arguments.clone().unwrap_or_default();
    // Templates want the arguments as a mapping; text that is not JSON stays text.
    let arguments = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
    let call = ToolCall::function(Some(call_id.clone()), name.clone(), arguments);
    match msgs.last_mut() {
        Some(m) if m.role == "assistant" && m.tool_calls.is_some() => {
            m.tool_calls.get_or_insert_with(Vec::new).push(call)
        }
        _ => msgs.push(ChatMessage::assistant_tool_calls("", vec![call])),
    }
    Ok(())
}

/// A call's result, named after the call it answers.
fn call_output(msgs: &[ChatMessage], item: &InputItem) -> Result<ChatMessage, ApiError> {
    let Some(call_id) = &item.call_id else {
        return Err(ApiError::invalid_param(
            "input",
            "a function_call_output item needs call_id",
        ));
    };
    let name = (msgs.iter().rev())
        .filter_map(|m| m.tool_calls.as_ref())
        .flatten()
        .find(|c| c.id.as_deref() == Some(call_id.as_str()))
        .map(|c| c.function.name.clone());
    let output = match &item.output {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Ok(ChatMessage::tool_result(call_id.clone(), name, output))
}

fn item_message(item: &InputItem) -> Result<ChatMessage, ApiError> {
    let kind = item.kind.as_deref().unwrap_or("message");
    if kind != "message" {
        return Err(ApiError::invalid_param(
            "input",
            format!("input items of type `{kind}` are not supported"),
        ));
    }
    let role = item.role.as_deref().unwrap_or("");
    if !ROLES.contains(&role) {
        return Err(ApiError::invalid_param(
            "input",
            format!("role must be one of user, assistant, system, developer (got `{role}`)"),
        ));
    }
    let text = match &item.content {
        None => String::new(),
        Some(ItemContent::Text(t)) => t.clone(),
        Some(ItemContent::Parts(parts)) => {
            let mut s = String::new();
            for p in parts {
                match (p.kind.as_str(), &p.text) {
                    ("input_text" | "output_text" | "text", Some(t)) => s.push_str(t),
                    (other, _) => {
                        return Err(ApiError::invalid_param(
                            "input",
                            format!("content parts of type `{other}` are not supported"),
                        ))
                    }
                }
            }
            s
        }
    };
    let role = if role == "developer" { "system" } else { role };
    Ok(ChatMessage::new(role, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Result<Vec<ChatMessage>, ApiError> {
        to_messages(&serde_json::from_value(v).expect("input"))
    }

    #[test]
    fn text_and_items_become_messages() {
        let m = input(serde_json::json!("hi")).expect("text");
        assert_eq!(m, vec![ChatMessage::new("user", "hi")]);
        let m = input(serde_json::json!([
            {"role": "developer", "content": "be brief"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "c"}]},
        ]))
        .expect("items");
        assert_eq!(
            m,
            vec![
                ChatMessage::new("system", "be brief"),
                ChatMessage::new("user", "ab"),
                ChatMessage::new("assistant", "c"),
            ]
        );
    }

    #[test]
    fn unsupported_items_are_400() {
        for v in [
            serde_json::json!([]),
            serde_json::json!([{"role": "wizard", "content": "x"}]),
            serde_json::json!([{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]),
            serde_json::json!([{"type": "reasoning", "summary": []}]),
            serde_json::json!([{"type": "function_call", "name": "f"}]),
            serde_json::json!([{"type": "function_call_output", "output": "x"}]),
        ] {
            let e = input(v).expect_err("refused");
            assert_eq!(e.status.as_u16(), 400);
        }
    }

    #[test]
    fn calls_and_their_outputs_become_tool_turns() {
        let m = input(serde_json::json!([
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ]))
        .expect("items");
        assert_eq!(m.len(), 3);
        let calls = m[1].tool_calls.as_ref().expect("calls");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.arguments["city"], "Paris");
        assert_eq!(m[2].role, "tool");
        assert_eq!(m[2].name.as_deref(), Some("get_weather"));
        assert_eq!(m[2].content, "sunny");
    }
}
