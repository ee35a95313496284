//! The messages a chat template renders, in the shape Hugging Face templates read:
//! `role`/`content`, an assistant's `tool_calls` (`[{id, type, function: {name,
//! arguments}}]`, arguments a mapping as transformers and vLLM pass them) and a tool
//! result's `tool_call_id`/`name`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One message of a conversation. Absent optional fields are left out of what the
/// template sees (Llama 3's template tests `'tool_calls' in message`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// `null` reads as empty (an assistant turn that only calls tools).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// On a `tool` message: the function's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            ..ChatMessage::default()
        }
    }

    /// An assistant turn made of tool calls (and possibly some text before them).
    pub fn assistant_tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            role: "assistant".into(),
            content: content.into(),
            tool_calls: Some(calls),
            ..ChatMessage::default()
        }
    }

    /// A tool's result for the call `tool_call_id`.
    pub fn tool_result(
        tool_call_id: impl Into<String>,
        name: Option<String>,
        content: impl Into<String>,
    ) -> Self {
        ChatMessage {
            role: "tool".into(),
            content: content.into(),
            tool_call_id: Some(tool_call_id.into()),
            name,
            ..ChatMessage::default()
        }
    }
}

/// One call of an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

impl ToolCall {
    pub fn function(id: Option<String>, name: impl Into<String>, arguments: Value) -> Self {
        ToolCall {
            id,
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments,
            },
        }
    }
}

/// `arguments` is a JSON value: a mapping for templates that `tojson` it; a string
/// only when the client sent arguments that are not JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

fn function_kind() -> String {
    "function".into()
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_stay_absent_and_null_content_is_empty() {
        let m = ChatMessage::new("user", "hi");
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"role": "user", "content": "hi"})
        );
        let m: ChatMessage = serde_json::from_str(
            r#"{"role":"assistant","content":null,"tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]}"#,
        )
        .unwrap();
        assert_eq!(m.content, "");
        let calls = m.tool_calls.unwrap();
        assert_eq!(calls[0].kind, "function");
        assert_eq!(calls[0].function.arguments["a"], 1);
    }
}
