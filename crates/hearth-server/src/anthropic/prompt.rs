//! Messages API conversation -> template messages -> prompt token ids.

use hearth_text::{ChatMessage, ToolCall};

use super::error::AnthropicError;
use super::tools::from_anthropic;
use super::types::{Content, ContentBlock, PromptFields};
use crate::generate::chat_prompt_ids_tools;
use crate::openai::tools::ToolRequest;
use crate::state::AppState;

/// Checks the model, the tools and the conversation and tokenizes it as the chat
/// path does (system first, tools through the template). A trailing assistant
/// message is a prefill: the answer continues it.
pub fn prompt(
    st: &AppState,
    p: &PromptFields,
) -> Result<(Vec<u32>, Option<ToolRequest>), AnthropicError> {
    st.check_model(&p.model)?;
    let tools = from_anthropic(p.tools.as_deref(), p.tool_choice.as_ref())?;
    if let Some(t) = &tools {
        st.limits.check_tool_request(t)?;
    }
    let (messages, prefill) = to_chat_messages(p)?;
    let template_tools = tools.as_ref().map(|t| t.template_tools.as_slice());
    let kwargs = serde_json::Map::new();
    let ids = chat_prompt_ids_tools(st, &messages, template_tools, &prefill, &kwargs)?;
    Ok((ids, tools))
}

pub fn prompt_ids(st: &AppState, p: &PromptFields) -> Result<Vec<u32>, AnthropicError> {
    Ok(prompt(st, p)?.0)
}

/// The template's messages and the prefill text.
pub fn to_chat_messages(p: &PromptFields) -> Result<(Vec<ChatMessage>, String), AnthropicError> {
    match p.messages.first() {
        None => {
            return Err(AnthropicError::invalid(
                "messages: at least one message is required",
            ))
        }
        Some(m) if m.role != "user" => {
            return Err(AnthropicError::invalid(
                "messages: the first message must use the \"user\" role",
            ))
        }
        Some(_) => {}
    }
    let mut out = Vec::with_capacity(p.messages.len() + 1);
    if let Some(system) = &p.system {
        out.push(ChatMessage::new("system", text_of(system, "system")?));
    }
    for (i, m) in p.messages.iter().enumerate() {
        let what = format!("messages.{i}.content");
        match (m.role.as_str(), &m.content) {
            ("user", Content::Blocks(blocks)) => user_blocks(blocks, &what, &mut out)?,
            ("assistant", Content::Blocks(blocks)) => out.push(assistant_blocks(blocks, &what)?),
            ("user" | "assistant", c) => {
                out.push(ChatMessage::new(m.role.clone(), text_of(c, &what)?))
            }
            (role, _) => {
                return Err(AnthropicError::invalid(format!(
                    "messages.{i}.role: must be \"user\" or \"assistant\", got \"{role}\""
                )))
            }
        }
    }
    let prefill = match out.last() {
        Some(last) if last.role == "assistant" && last.tool_calls.is_none() => {
            out.pop().map(|m| m.content).unwrap_or_default()
        }
        _ => String::new(),
    };
    Ok((out, prefill))
}

/// A user turn: each `tool_result` becomes a `tool` message (the function's name
/// looked up from its `tool_use`), the text a user message after them.
fn user_blocks(
    blocks: &[ContentBlock],
    what: &str,
    out: &mut Vec<ChatMessage>,
) -> Result<(), AnthropicError> {
    let mut text = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        if b.kind != "tool_result" {
            text.push(b.clone());
            continue;
        }
        let Some(id) = &b.tool_use_id else {
            return Err(AnthropicError::invalid(format!(
                "{what}.{j}.tool_use_id: field required"
            )));
        };
        let mut content = match &b.content {
            None => String::new(),
            Some(c) => text_of(c, &format!("{what}.{j}.content"))?,
        };
        // Templates have no error flag: the model reads it in the result.
        if b.is_error == Some(true) {
            content.insert_str(0, "Error: ");
        }
        let name = out
            .iter()
            .rev()
            .filter_map(|m| m.tool_calls.as_ref())
            .flatten()
            .find(|c| c.id.as_deref() == Some(id.as_str()))
            .map(|c| c.function.name.clone());
        out.push(ChatMessage::tool_result(id.clone(), name, content));
    }
    if !text.is_empty() || out.last().is_none_or(|m| m.role != "tool") {
        out.push(ChatMessage::new(
            "user",
            text_of(&Content::Blocks(text), what)?,
        ));
    }
    Ok(())
}

/// An assistant turn: its text and its `tool_use` blocks as calls.
fn assistant_blocks(blocks: &[ContentBlock], what: &str) -> Result<ChatMessage, AnthropicError> {
    let (uses, text): (Vec<_>, Vec<_>) = blocks.iter().cloned().partition(|b| b.kind == "tool_use");
    let content = text_of(&Content::Blocks(text), what)?;
    if uses.is_empty() {
        return Ok(ChatMessage::new("assistant", content));
    }
    let calls = uses
        .iter()
        .map(|b| match (&b.id, &b.name) {
            (Some(id), Some(name)) => Ok(ToolCall::function(
                Some(id.clone()),
                name.clone(),
                b.input.clone().unwrap_or_else(|| serde_json::json!({})),
            )),
            _ => Err(AnthropicError::invalid(format!(
                "{what}: a tool_use block needs id and name"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChatMessage::assistant_tool_calls(content, calls))
}

/// The text of a string or of text blocks, joined as the OpenAI path joins parts.
fn text_of(c: &Content, what: &str) -> Result<String, AnthropicError> {
    match c {
        Content::Text(t) => Ok(t.clone()),
        Content::Blocks(blocks) => {
            let mut s = String::new();
            for (i, b) in blocks.iter().enumerate() {
                match (b.kind.as_str(), &b.text) {
                    ("text", Some(t)) => s.push_str(t),
                    ("text", None) => {
                        return Err(AnthropicError::invalid(format!("{what}.{i}.text: field required")))
                    }
                    (kind, _) => {
                        return Err(AnthropicError::invalid(format!(
                            "{what}.{i}: content blocks of type \"{kind}\" are not supported (text only)"
                        )))
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

    fn fields(json: &str) -> PromptFields {
        parse_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn system_first_blocks_joined_prefill_split() {
        let p = fields(
            r#"{"model":"m","system":[{"type":"text","text":"be "},{"type":"text","text":"brief"}],
            "messages":[{"role":"user","content":"hi"},{"role":"user","content":[{"type":"text","text":"a"}]},
            {"role":"assistant","content":"Sure:"}]}"#,
        );
        let (m, prefill) = to_chat_messages(&p).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(got, [("system", "be brief"), ("user", "hi"), ("user", "a")]);
        assert_eq!(prefill, "Sure:");
        let (m, prefill) = to_chat_messages(&fields(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        ))
        .unwrap();
        assert_eq!((m.len(), prefill.as_str()), (1, ""));
    }

    #[test]
    fn tool_use_and_tool_result_blocks_convert() {
        let p = fields(
            r#"{"model":"m","messages":[{"role":"user","content":"weather?"},
            {"role":"assistant","content":[{"type":"text","text":"Checking."},
              {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"-3 C"}]},
              {"type":"tool_result","tool_use_id":"toolu_2","is_error":true,"content":"timeout"},
              {"type":"text","text":"And tomorrow?"}]}]}"#,
        );
        let (m, prefill) = to_chat_messages(&p).unwrap();
        assert_eq!(prefill, "");
        let roles: Vec<_> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "tool", "user"]);
        assert_eq!(
            (m[3].content.as_str(), m[3].name.as_deref()),
            ("Error: timeout", None)
        );
        assert_eq!(m[1].content, "Checking.");
        let call = &m[1].tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.id.as_deref(), Some("toolu_1"));
        assert_eq!(call.function.arguments, serde_json::json!({"city": "Oslo"}));
        assert_eq!(
            (
                m[2].tool_call_id.as_deref(),
                m[2].name.as_deref(),
                m[2].content.as_str()
            ),
            (Some("toolu_1"), Some("get_weather"), "-3 C")
        );
        assert_eq!(m[4].content, "And tomorrow?");
        for body in [
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","name":"f"}]}]}"#,
        ] {
            assert_eq!(
                to_chat_messages(&fields(body)).unwrap_err().status.as_u16(),
                400,
                "{body}"
            );
        }
    }

    #[test]
    fn bad_conversations_are_400() {
        for body in [
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"system","content":"y"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
        ] {
            let e = to_chat_messages(&fields(body)).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.kind),
                (400, "invalid_request_error"),
                "{body}"
            );
        }
    }
}
