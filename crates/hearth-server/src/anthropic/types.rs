//! Messages API request bodies. Unknown fields are ignored; a field of the wrong
//! type fails deserialization (a 400 in Anthropic's shape).

use serde::Deserialize;
use serde_json::Value;

/// `system` and message `content`: a string or a list of content blocks.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// A content block: `text`, `tool_use` (assistant: id, name, input) or
/// `tool_result` (user: tool_use_id, content, is_error).
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct ContentBlock {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    /// A tool result's content: a string or text blocks.
    #[serde(default)]
    #[schema(no_recursion)]
    pub content: Option<Content>,
    #[serde(default)]
    pub is_error: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct MessageIn {
    pub role: String,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

/// What both endpoints read to build the prompt.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct PromptFields {
    #[schema(example = "default")]
    pub model: String,
    #[serde(default)]
    pub system: Option<Content>,
    pub messages: Vec<MessageIn>,
    /// `[{name, description, input_schema}]` (checked in `tools.rs`).
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `{"type": "auto" | "any" | "tool" | "none", "name", "disable_parallel_tool_use"}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

/// POST /v1/messages.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct MessagesRequest {
    #[serde(flatten)]
    pub prompt: PromptFields,
    /// Required by the API; signed so a negative value gets a clear message.
    pub max_tokens: i64,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Accepted; the server keeps no per-user state.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}
