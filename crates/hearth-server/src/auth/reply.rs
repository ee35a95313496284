//! Refusals from the auth layers, in the shape of the API that was called:
//! Anthropic's for `/v1/messages*`, OpenAI's for the rest.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::anthropic::error::AnthropicError;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OpenAi,
    Anthropic,
}

impl Shape {
    pub fn for_path(path: &str) -> Shape {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Shape::Anthropic
        } else {
            Shape::OpenAi
        }
    }
}

/// One refusal: its status and message; the shape decides the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
    pub param: Option<&'static str>,
}

impl Refused {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
            retry_after: None,
            param: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Refused {
        Refused::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Refused {
        Refused::new(StatusCode::FORBIDDEN, message)
    }

    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Refused {
        Refused {
            retry_after: Some(retry_after),
            ..Refused::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn internal(message: impl Into<String>) -> Refused {
        Refused::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    fn openai(&self) -> ApiError {
        let (kind, code) = match self.status.as_u16() {
            401 => ("invalid_request_error", Some("invalid_api_key")),
            403 => ("permission_error", Some("permission_denied")),
            429 => ("requests", Some("rate_limit_exceeded")),
            s if s >= 500 => ("server_error", None),
            _ => ("invalid_request_error", None),
        };
        ApiError {
            param: self.param.map(str::to_string),
            code: code.map(str::to_string),
            ..ApiError::new(self.status, kind, self.message.clone())
        }
    }

    fn anthropic(&self) -> AnthropicError {
        let kind = match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        AnthropicError {
            status: self.status,
            kind,
            message: self.message.clone(),
        }
    }

    pub fn into_response(self, shape: Shape) -> Response {
        let mut resp = match shape {
            Shape::OpenAi => self.openai().into_response(),
            Shape::Anthropic => self.anthropic().into_response(),
        };
        let h = resp.headers_mut();
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> serde_json::Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn shapes() {
        assert_eq!(
            Shape::for_path("/v1/messages/count_tokens"),
            Shape::Anthropic
        );
        assert_eq!(Shape::for_path("/v1/chat/completions"), Shape::OpenAi);
        let r = Refused::unauthorized("no key").into_response(Shape::OpenAi);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let v = body(r).await;
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["message"], "no key");
        let r = Refused::too_many("slow down", 7).into_response(Shape::Anthropic);
        assert_eq!(
            (r.status().as_u16(), &r.headers()[header::RETRY_AFTER]),
            (429, &HeaderValue::from(7u64))
        );
        let v = body(r).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        let v = body(Refused::forbidden("no").into_response(Shape::Anthropic)).await;
        assert_eq!(v["error"]["type"], "permission_error");
    }
}
