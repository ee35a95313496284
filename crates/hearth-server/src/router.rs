//! The HTTP routes and the layers around them.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::anthropic::error::AnthropicError;
use crate::anthropic::messages as anthropic;
use crate::audit;
use crate::error::ApiError;
use crate::health;
use crate::metrics;
use crate::openai::{chat, completions, models, responses};
use crate::openapi::{self, ApiDoc};
use crate::readiness;
use crate::state::AppState;
use crate::track::track;
use crate::web;

pub fn router(state: AppState) -> Router {
    // The limit is enforced by the body extractor, whose rejection `ApiJson` turns
    // into a 413 in OpenAI's shape.
    let limit = DefaultBodyLimit::max(state.max_body_bytes);
    let state = Arc::new(state);
    // Every route is registered with its OpenAPI annotation: served means documented.
    let (app, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(models::list))
        .routes(routes!(models::retrieve))
        .routes(routes!(chat::chat_completions))
        .routes(routes!(completions::completions))
        .routes(routes!(responses::create))
        .routes(routes!(anthropic::messages))
        .routes(routes!(anthropic::count_tokens))
        .routes(routes!(health::health))
        .routes(routes!(health::stats))
        .routes(routes!(readiness::ready))
        .routes(routes!(readiness::version))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi::openapi_json))
        // The web chat page and its assets (static; their API calls carry the key).
        .routes(routes!(web::index))
        .routes(routes!(web::asset))
        .split_for_parts();
    let app = app
        .layer(Extension(Arc::new(doc)))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(method_not_allowed)
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
        // Before any layer reads a body: an oversized one is drained, then refused.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::body_drain::drain_oversized,
        ))
        // Each request is logged once, by request_log.rs: no second line for 5xx.
        .layer(TraceLayer::new_for_http().on_failure(()))
        // Outermost: every request, even one refused by an inner layer, is tracked.
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// A known route asked with another method: 405 in the error shape of the route's API.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{method} is not allowed on {}", uri.path()),
    );
    if uri.path().starts_with("/v1/messages") {
        AnthropicError::from(e).into_response()
    } else {
        e.into_response()
    }
}
