//! The body of POST /v1/responses and how its `input` becomes a conversation.

use hearth_text::ChatMessage;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResponsesRequest {
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

/// One input item: a message (`type` "message" or left out). Other item types are
/// refused by `to_messages`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InputItem {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub role: Option<String>,
    pub content: Option<ItemContent>,
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
    items.iter().map(item_message).collect()
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
        ] {
            let e = input(v).expect_err("refused");
            assert_eq!(e.status.as_u16(), 400);
        }
    }
}
