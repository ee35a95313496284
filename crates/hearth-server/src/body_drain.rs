//! A request whose declared body is over the limit is read to its end, and dropped,
//! before it is answered. Answering first and closing the connection on unread bytes
//! makes the kernel reset it, and the client can lose the 413 with the reset (seen with
//! a 10 MB prompt on loopback). A body declared past `DRAIN_CAP`, or slower than
//! `DRAIN_TIMEOUT`, is not waited for.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

use crate::state::AppState;

/// The most bytes read only to be dropped.
const DRAIN_CAP: u64 = 64 << 20;

/// How long a body being dropped may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn drain_oversized(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let limit = st.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 && n <= DRAIN_CAP => {}
        _ => return next.run(req).await,
    }
    let (parts, body) = req.into_parts();
    let mut data = body.into_data_stream();
    let drained = async { while let Some(Ok(_)) = data.next().await {} };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    // One frame just over the limit: the body readers refuse it as they refuse the
    // real one, in each API's error shape, without reading its (zeroed) bytes.
    let over = Body::from(vec![0u8; limit.saturating_add(1)]);
    next.run(Request::from_parts(parts, over)).await
}
