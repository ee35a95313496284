//! Messages API conversation -> template messages -> prompt token ids.

use hearth_text::ChatMessage;

use super::error::AnthropicError;
use super::types::{Content, PromptFields};
use crate::generate::chat_prompt_ids;
use crate::state::AppState;

/// Checks the model and the conversation and tokenizes it as the chat path does
/// (system first). A trailing assistant message is a prefill: the answer continues it.
pub fn prompt_ids(st: &AppState, p: &PromptFields) -> Result<Vec<u32>, AnthropicError> {
    st.check_model(&p.model)?;
    if p.tools.is_some() {
        return Err(AnthropicError::invalid(
            "tools: tool use is not supported by this server yet",
        ));
    }
    let (messages, prefill) = to_chat_messages(p)?;
    Ok(chat_prompt_ids(st, &messages, &prefill)?)
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
        if m.role != "user" && m.role != "assistant" {
            return Err(AnthropicError::invalid(format!(
                "messages.{i}.role: must be \"user\" or \"assistant\", got \"{}\"",
                m.role
            )));
        }
        let what = format!("messages.{i}.content");
        out.push(ChatMessage::new(
            m.role.clone(),
            text_of(&m.content, &what)?,
        ));
    }
    let prefill = match out.last() {
        Some(last) if last.role == "assistant" => out.pop().map(|m| m.content).unwrap_or_default(),
        _ => String::new(),
    };
    Ok((out, prefill))
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
