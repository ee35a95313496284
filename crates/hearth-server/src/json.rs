//! A JSON body extractor whose every failure is an OpenAI-shaped `ApiError`.
//!
//! axum's own `Json` answers 415/422 in plain text; OpenAI clients expect a 400 with
//! the error object, and a body over the limit must be a 413 in the same shape. The
//! content type is not required (curl -d sends form-urlencoded).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_error(r.status(), r.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "invalid_request_error", "request body is too large")
    } else {
        ApiError::bad_request(format!("could not read the request body: {text}"))
    }
}

/// Parses a body; a syntax error or a field of the wrong type is a 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "malformed JSON"
        } else {
            "invalid request"
        };
        ApiError::bad_request(format!("{what}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct T {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn syntax_and_type_errors_are_400() {
        let e = parse_json::<T>(b"{\"n\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("malformed JSON"));
        let e = parse_json::<T>(b"{\"n\": \"x\"}").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("invalid request"));
        assert!(parse_json::<T>(b"{\"n\": 3, \"other\": 1}").is_ok());
    }

    #[test]
    fn too_large_is_413() {
        let e = body_error(StatusCode::PAYLOAD_TOO_LARGE, String::new());
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
    }
}
