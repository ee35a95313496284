//! The security layers around the routes, in order from the outside: Host allowlist,
//! CORS (only when origins are configured), API keys.

use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::host_guard::check_host;
use super::middleware::authenticate;
use crate::state::AppState;

pub fn security_layers(app: Router<Arc<AppState>>, state: &Arc<AppState>) -> Router<Arc<AppState>> {
    // Added innermost first.
    let app = app.layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let app = match cors(&state.cors_origins) {
        Some(c) => app.layer(c),
        None => app,
    };
    app.layer(middleware::from_fn_with_state(state.clone(), check_host))
}

/// No layer at all without origins: no `Access-Control-*` header is ever sent and a
/// browser's preflight fails, so other sites' pages cannot read answers.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok())
        .collect();
    if list.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            // SDKs send their own headers (x-stainless-*, anthropic-version): the
            // origin is what is checked, so any header an allowed origin asks for is fine.
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER]),
    )
}
