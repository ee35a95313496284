//! GET /ready (readiness) and GET /version.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// Work waiting and no engine loop pass for this long: the engine is stuck. A single
/// step (a prefill chunk of a large model on CPU) can take seconds, never minutes.
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// Ready when the model is loaded (it is, once the server listens), the engine thread
/// is alive and stepping (or idle), and the server is not draining for shutdown.
#[utoipa::path(get, path = "/ready", tag = "Operations",
    responses((status = 200, description = "Model loaded, engine running"), (status = 503, description = "Draining, engine stopped or stalled, or audit log failing")))]
pub async fn ready(State(st): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let status = if st.draining.load(Ordering::SeqCst) {
        "draining"
    } else if !st.engine.is_alive() {
        "engine stopped"
    } else if !st.engine.is_stepping(STALL_LIMIT) {
        "engine stalled"
    } else if st.audit.as_ref().is_some_and(|a| a.status().is_failing()) {
        // Records are not being written (disk full, I/O error): see /stats "audit".
        "audit log failing"
    } else {
        return (StatusCode::OK, Json(json!({ "status": "ready" })));
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": status })),
    )
}

#[utoipa::path(get, path = "/version", tag = "Operations",
    responses((status = 200, description = "Version, git commit and model")))]
pub async fn version(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "git": st.git_commit,
        "model": st.model_names.first(),
    }))
}
