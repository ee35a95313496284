//! hearth-server: HTTP in, HTTP out.
//!
//! An axum app serving the OpenAI API (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions`), Anthropic's Messages API (`/v1/messages`,
//! `/v1/messages/count_tokens`) plus `/health` and `/stats`. It maps API JSON to engine
//! requests and engine events back to JSON or SSE; it never touches tensors.

pub mod anthropic;
pub mod audit;
pub mod auth;
mod body_drain;
pub mod body_end;
pub mod constraints;
pub mod context;
pub mod error;
pub mod fan_out;
pub mod generate;
pub mod health;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod readiness;
pub mod request_log;
pub mod router;
pub mod serving;
pub mod sqlite_setup;
pub mod state;
pub mod track;
pub mod tracked_stream;
pub mod web;

pub use error::ApiError;
pub use router::router;
pub use state::AppState;
