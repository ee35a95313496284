//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
//!
//! Handlers build the shared `ApiError` (so sampling checks and engine refusals are
//! decided once) and this type re-labels it. A full queue is 529 `overloaded_error`,
//! the status Anthropic's API and SDKs use for it (the SDKs retry it); an engine
//! that has stopped stays a 503 `api_error`.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::json::ApiJson;

#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicError {
    pub status: StatusCode,
    /// Anthropic's error `type`.
    pub kind: &'static str,
    pub message: String,
}

impl AnthropicError {
    pub fn invalid(message: impl Into<String>) -> Self {
        AnthropicError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({ "type": "error", "error": { "type": self.kind, "message": self.message } })
    }
}

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        let overloaded = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let (status, kind) = match e.status.as_u16() {
            400 => (e.status, "invalid_request_error"),
            404 => (e.status, "not_found_error"),
            413 => (e.status, "request_too_large"),
            503 if e.kind == "server_overloaded" => (overloaded, "overloaded_error"),
            s if s < 500 => (e.status, "invalid_request_error"),
            _ => (e.status, "api_error"),
        };
        // A field-level message names the field, as Anthropic's do ("max_tokens: ...").
        let message = match &e.param {
            Some(p) if !e.message.starts_with(p.as_str()) => format!("{p}: {}", e.message),
            _ => e.message,
        };
        AnthropicError {
            status,
            kind,
            message,
        }
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The shared JSON extractor with its rejections in Anthropic's shape.
pub struct AnthropicJson<T>(pub T);

impl<T, S> FromRequest<S> for AnthropicJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AnthropicError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AnthropicError> {
        let ApiJson(v) = ApiJson::<T>::from_request(req, state).await?;
        Ok(AnthropicJson(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_engine::EngineError;

    #[test]
    fn shared_errors_are_relabelled() {
        let e = AnthropicError::from(ApiError::model_not_found("claude-x"));
        assert_eq!((e.status.as_u16(), e.kind), (404, "not_found_error"));
        let b = e.body();
        assert_eq!(b["type"], "error");
        assert!(b["error"]["message"].as_str().unwrap().contains("claude-x"));
        let e = AnthropicError::from(ApiError::from(EngineError::Overloaded(3)));
        assert_eq!((e.status.as_u16(), e.kind), (529, "overloaded_error"));
        let e = AnthropicError::from(ApiError::from(EngineError::Stopped));
        assert_eq!((e.status.as_u16(), e.kind), (503, "api_error"));
        let e = AnthropicError::from(ApiError::internal("boom"));
        assert_eq!((e.status.as_u16(), e.kind), (500, "api_error"));
        let e = AnthropicError::from(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "too big",
        ));
        assert_eq!((e.status.as_u16(), e.kind), (413, "request_too_large"));
        let e = AnthropicError::from(ApiError::invalid_param("top_p", "must be in (0, 1]"));
        assert_eq!(e.kind, "invalid_request_error");
        assert_eq!(e.message, "top_p: must be in (0, 1]");
    }
}
