//! The Anthropic Messages API (`/v1/messages`, `/v1/messages/count_tokens`), tool use
//! included (`tools`, `tool_choice`, `tool_use`/`tool_result` blocks).
//! It shares prompt rendering, sampling validation and engine plumbing with the
//! OpenAI side; only the wire shapes differ.

pub mod error;
pub mod messages;
pub mod prompt;
pub mod reply;
pub mod sse;
pub mod tool_stream;
pub mod tools;
pub mod types;
