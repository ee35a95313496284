//! GET /openapi.json: the OpenAPI document of every route, generated from the
//! handlers' `#[utoipa::path]` annotations and the request types' `ToSchema`
//! derives. The router is built from the same annotations (`routes!`), so a route
//! cannot be served without being documented.

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(info(
    title = "hearth",
    description = "Local LLM inference server: OpenAI- and Anthropic-compatible APIs, \
                   operations endpoints and the web chat page."
))]
pub struct ApiDoc;

/// The errors of OpenAI's generation endpoints (each an OpenAI error object).
#[derive(utoipa::IntoResponses)]
pub enum OpenAiErrors {
    #[response(status = 400, description = "Invalid request")]
    BadRequest,
    #[response(status = 401, description = "Missing or invalid API key")]
    Unauthorized,
    #[response(status = 404, description = "Unknown model")]
    NotFound,
    #[response(status = 413, description = "Request body too large")]
    TooLarge,
    #[response(
        status = 429,
        description = "Rate or concurrency limit of the key (Retry-After)"
    )]
    TooMany,
    #[response(
        status = 503,
        description = "Queue full, draining, or audit log failing (fail-closed)"
    )]
    Unavailable,
}

/// The errors of Anthropic's Messages endpoint (each an Anthropic error object).
#[derive(utoipa::IntoResponses)]
pub enum AnthropicErrors {
    #[response(status = 400, description = "Invalid request")]
    BadRequest,
    #[response(status = 401, description = "Missing or invalid API key")]
    Unauthorized,
    #[response(status = 404, description = "Unknown model")]
    NotFound,
    #[response(status = 413, description = "Request body too large")]
    TooLarge,
    #[response(
        status = 429,
        description = "Rate or concurrency limit of the key (Retry-After)"
    )]
    TooMany,
    #[response(status = 529, description = "Overloaded: the queue is full")]
    Overloaded,
}

#[utoipa::path(get, path = "/openapi.json", tag = "Operations",
    responses((status = 200, description = "This document")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<Document>>) -> Json<Document> {
    Json((*doc).clone())
}
