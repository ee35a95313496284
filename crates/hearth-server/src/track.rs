//! The outermost layer: gives each request its `RequestContext` and id, and tells the
//! observers once its response body has ended or been dropped.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::body_end::{on_body_end, BodyEnd};
use crate::context::{FinishedRequest, RequestContext};
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A client's own request id is kept when it is short and plain; otherwise a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

pub async fn track(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let ctx = Arc::new(RequestContext::new(
        request_id(&req),
        req.method().as_str(),
        req.uri().path(),
    ));
    req.extensions_mut().insert(ctx.clone());
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if st.observers.is_empty() {
        return resp;
    }
    let status = resp.status().as_u16();
    on_body_end(resp, Report { st, ctx, status })
}

/// What to tell the observers when the body is over.
struct Report {
    st: Arc<AppState>,
    ctx: Arc<RequestContext>,
    status: u16,
}

impl BodyEnd for Report {
    fn ended(self, completed: bool) {
        let done = FinishedRequest {
            id: self.ctx.id.clone(),
            method: self.ctx.method.clone(),
            endpoint: self.ctx.endpoint.clone(),
            status: self.status,
            received_at: self.ctx.received_at,
            latency: self.ctx.received.elapsed(),
            completed,
            fields: self.ctx.snapshot(),
        };
        for o in &self.st.observers {
            o.finished(&done);
        }
    }
}
