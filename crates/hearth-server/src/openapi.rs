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

#[utoipa::path(get, path = "/openapi.json", tag = "Operations",
    responses((status = 200, description = "This document")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<Document>>) -> Json<Document> {
    Json((*doc).clone())
}
