//! API errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_engine::EngineError;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's error `type` (e.g. "invalid_request_error").
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// 400 invalid_request_error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 about one request field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.to_string()),
            ..Self::bad_request(message)
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            param: Some("model".into()),
            code: Some("model_not_found".into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("The model `{model}` does not exist."),
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Engine refusals: the client's fault is a 400 (as vLLM does for a prompt longer
/// than the context), a full queue is a 503, the rest is ours.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let msg = e.to_string();
        match e {
            EngineError::EmptyPrompt => ApiError::invalid_param("prompt", msg),
            EngineError::ContextTooLong { .. } => ApiError {
                code: Some("context_length_exceeded".into()),
                ..ApiError::invalid_param("messages", msg)
            },
            EngineError::TooLargeForCache { .. } => ApiError::bad_request(msg),
            EngineError::InvalidParams(_) => ApiError::bad_request(msg),
            EngineError::Overloaded(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_overloaded", msg)
            }
            EngineError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", msg)
            }
            EngineError::Model(_) => ApiError::internal(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_status() {
        let too_long = EngineError::ContextTooLong {
            max: 10,
            requested: 20,
            prompt: 5,
            max_tokens: 15,
        };
        let e = ApiError::from(too_long);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.kind, "invalid_request_error");
        assert!(e.message.contains("maximum context length is 10"));
        assert_eq!(
            ApiError::from(EngineError::Overloaded(3)).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(EngineError::EmptyPrompt).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(EngineError::Model("x".into())).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn body_has_openai_shape() {
        let b = ApiError::model_not_found("gpt-9").body();
        let err = &b["error"];
        assert_eq!(err["type"], "invalid_request_error");
        assert_eq!(err["param"], "model");
        assert_eq!(err["code"], "model_not_found");
        assert!(err["message"].as_str().unwrap().contains("gpt-9"));
        let b = ApiError::bad_request("x").body();
        assert!(b["error"]["param"].is_null() && b["error"]["code"].is_null());
    }
}
