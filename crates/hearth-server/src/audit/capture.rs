//! The audit log's two layers.
//!
//! `audit_gate` (outside auth): refuses `/v1/*` with a 503 while the log cannot be
//! written and fail-closed is on, and records the subject header. `capture_content`
//! (inside auth, which decides per key): when content logging is on for the request,
//! buffers its body (bounded by the body limit) into the context and asks the
//! response stream to keep the output text.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::anthropic::error::AnthropicError;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::state::AppState;

/// A gateway in front of hearth names the data subject here; it takes precedence
/// over the body's `user` (OpenAI) or `metadata.user_id` (Anthropic).
pub const SUBJECT_HEADER: &str = "x-hearth-subject";
const MAX_SUBJECT_LEN: usize = 256;

/// An error in the shape of the API the path belongs to.
fn api_error(path: &str, e: ApiError) -> Response {
    if path.starts_with("/v1/messages") {
        AnthropicError::from(e).into_response()
    } else {
        e.into_response()
    }
}

fn context(req: &Request) -> Option<Arc<RequestContext>> {
    req.extensions().get::<Arc<RequestContext>>().cloned()
}

pub async fn audit_gate(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(audit) = st.audit.as_ref() else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    if audit.fail_closed && audit.status().is_failing() && path.starts_with("/v1/") {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the audit log cannot be written; requests are refused until it recovers",
        );
        return api_error(&path, e);
    }
    let subject = req
        .headers()
        .get(SUBJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT_LEN)
        .map(str::to_string);
    let ctx = context(&req);
    let resp = next.run(req).await;
    // After the handler, so the header wins over the body's field; the response
    // body has not been read yet, so the record sees it.
    if let (Some(ctx), Some(s)) = (ctx, subject) {
        ctx.set_subject(Some(&s));
    }
    resp
}

pub async fn capture_content(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (Some(audit), Some(ctx)) = (st.audit.as_ref(), context(&req)) else {
        return next.run(req).await;
    };
    let capture = {
        let mut f = ctx.fields();
        f.capture_output |= audit.log_content;
        f.capture_output
    };
    if !capture || req.method() != Method::POST {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, st.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return api_error(&path, body_error(&e)),
    };
    ctx.fields().request_body = Some(String::from_utf8_lossy(&bytes).into_owned());
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The same answers the JSON extractor gives: 413 over the limit, else 400.
fn body_error(e: &axum::Error) -> ApiError {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if s.to_string().contains("length limit exceeded") {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request body is too large",
            );
        }
        src = s.source();
    }
    ApiError::bad_request(format!("could not read the request body: {e}"))
}
