//! The OpenAI-compatible API.

pub mod chat;
pub mod completions;
pub mod logprobs;
pub mod models;
pub mod sampling;
pub mod sse;
pub mod types;
