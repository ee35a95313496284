//! OpenAI chat messages -> template messages: text content, an assistant's
//! `tool_calls` (arguments parsed into a mapping, as templates `tojson` them) and
//! `tool` results (with the function's name looked up from the call they answer).

use hearth_text::{ChatMessage, ToolCall};
use serde_json::Value;

use super::types::{ChatMessageIn, MessageContent};
use crate::error::ApiError;

pub fn to_chat_messages(msgs: &[ChatMessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
    if msgs.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "messages must not be empty",
        ));
    }
    let mut out: Vec<ChatMessage> = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let mut msg = ChatMessage::new(m.role.clone(), text_of(m, i)?);
        if let Some(calls) = &m.tool_calls {
            if m.role != "assistant" {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].tool_calls"),
                    "only assistant messages have tool_calls",
                ));
            }
            msg.tool_calls = Some(calls.iter().map(to_tool_call).collect());
        }
        if m.role == "tool" {
            msg.tool_call_id = m.tool_call_id.clone();
            msg.name = m
                .name
                .clone()
                .or_else(|| name_of_call(&out, m.tool_call_id.as_deref()));
        }
        out.push(msg);
    }
    Ok(out)
}

/// Arguments as a JSON value: a string that holds JSON is parsed (what vLLM gives
/// templates); anything else is kept as it came.
fn to_tool_call(c: &super::types::ToolCallIn) -> ToolCall {
    let args = match &c.function.arguments {
        None => Value::Object(Default::default()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(v) => v.clone(),
    };
    ToolCall::function(c.id.clone(), c.function.name.clone(), args)
}

/// The function name of the earlier call `id`.
fn name_of_call(earlier: &[ChatMessage], id: Option<&str>) -> Option<String> {
    let id = id?;
    earlier
        .iter()
        .rev()
        .filter_map(|m| m.tool_calls.as_ref())
        .flatten()
        .find(|c| c.id.as_deref() == Some(id))
        .map(|c| c.function.name.clone())
}

/// Text content: a string or text parts, joined.
fn text_of(m: &ChatMessageIn, i: usize) -> Result<String, ApiError> {
    match &m.content {
        None => Ok(String::new()),
        Some(MessageContent::Text(t)) => Ok(t.clone()),
        Some(MessageContent::Parts(parts)) => {
            let mut s = String::new();
            for p in parts {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => s.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::invalid_param(
                            &format!("messages[{i}].content"),
                            format!("content part of type `{kind}` is not supported"),
                        ))
                    }
                }
            }
            Ok(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_json;
    use crate::openai::types::ChatCompletionRequest;

    #[test]
    fn tool_calls_and_results_convert() {
        let req: ChatCompletionRequest = parse_json(
            br#"{"model":"m","messages":[{"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
              "function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"n\": 2}"}},
              {"id":"call_2","type":"function","function":{"name":"f","arguments":"not json"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"21C"},
            {"role":"tool","tool_call_id":"call_2","name":"given","content":[{"type":"text","text":"x"}]}]}"#,
        )
        .unwrap();
        let m = to_chat_messages(&req.messages).unwrap();
        let calls = m[1].tool_calls.as_ref().unwrap();
        assert_eq!(m[1].content, "");
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(
            calls[0].function.arguments,
            serde_json::json!({"city": "Paris", "n": 2})
        );
        assert_eq!(calls[1].function.arguments, "not json");
        assert_eq!(
            (
                m[2].role.as_str(),
                m[2].tool_call_id.as_deref(),
                m[2].name.as_deref()
            ),
            ("tool", Some("call_1"), Some("get_weather"))
        );
        assert_eq!(
            (m[3].name.as_deref(), m[3].content.as_str()),
            (Some("given"), "x")
        );
        let bad: ChatCompletionRequest = parse_json(
            br#"{"model":"m","messages":[{"role":"user","content":"x","tool_calls":[{"function":{"name":"f"}}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            to_chat_messages(&bad.messages).unwrap_err().status.as_u16(),
            400
        );
    }
}
