//! The HTTP routes and the layers around them.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::anthropic::messages as anthropic;
use crate::audit;
use crate::error::ApiError;
use crate::health::{health, stats};
use crate::metrics::metrics;
use crate::readiness::{ready, version};
use crate::openai::{chat, completions, models, responses};
use crate::state::AppState;
use crate::track::track;

pub fn router(state: AppState) -> Router {
    // The limit is enforced by the body extractor, whose rejection `ApiJson` turns
    // into a 413 in OpenAI's shape.
    let limit = DefaultBodyLimit::max(state.max_body_bytes);
    let state = Arc::new(state);
    let app = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::retrieve))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/responses", post(responses::create))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        // The web chat page and its assets (static; their API calls carry the key).
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        // Inside auth (which sets a key's content logging): keeps the body when asked.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::capture::capture_content,
        ))
        .layer(limit);
    // Host allowlist, CORS, API keys (auth::layers): inside tracking, outside handlers.
    crate::auth::layers::security_layers(app, &state)
        // Outside auth: fail-closed refusals and the subject header.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::capture::audit_gate,
        ))
        // Each request is logged once, by request_log.rs: no second line for 5xx.
        .layer(TraceLayer::new_for_http().on_failure(()))
        // Outermost: every request, even one refused by an inner layer, is tracked.
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}
