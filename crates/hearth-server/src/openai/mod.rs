//! The OpenAI-compatible API.

pub mod chat;
pub mod completions;
pub mod logit_bias;
pub mod logprobs;
pub mod messages;
pub mod models;
pub mod responses;
pub mod sampling;
pub mod sse;
pub mod structured;
pub mod tool_grammar;
pub mod tool_schema;
pub mod tool_stream;
pub mod tools;
pub mod types;
