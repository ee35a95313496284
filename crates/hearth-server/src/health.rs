//! GET /health (liveness) and GET /stats (engine counters as JSON; no request content).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use hearth_engine::stats::StatsSnapshot;
use serde_json::{json, Value};

use crate::state::AppState;

#[utoipa::path(get, path = "/health", tag = "Operations",
    responses((status = 200, description = "Alive (and the audit log's state)")))]
pub async fn health(State(st): State<Arc<AppState>>) -> Json<Value> {
    let mut v = json!({ "status": "ok" });
    if let Some(a) = &st.audit {
        // A failing audit log is reported, not hidden (fail-closed refuses /v1/*).
        v["audit"] = json!(if a.status().is_failing() {
            "failing"
        } else {
            "ok"
        });
    }
    Json(v)
}

#[utoipa::path(get, path = "/stats", tag = "Operations",
    responses((status = 200, description = "Engine counters as JSON (no request content)")))]
pub async fn stats(State(st): State<Arc<AppState>>) -> Json<Value> {
    let mut v = stats_json(&st.engine.stats(), st.engine.max_model_len());
    if let Some(a) = &st.audit {
        v["audit"] = a.status().json();
    }
    Json(v)
}

pub fn stats_json(s: &StatsSnapshot, max_model_len: usize) -> Value {
    json!({
        "max_model_len": max_model_len,
        "total_blocks": s.total_blocks,
        "used_blocks": s.used_blocks,
        "cached_free_blocks": s.cached_free_blocks,
        "running": s.running,
        "waiting": s.waiting,
        "queued": s.queued,
        "steps": s.steps,
        "preemptions": s.preemptions,
        "prefix_cache_queries": s.prefix_cache_queries,
        "prefix_cache_hit_tokens": s.prefix_cache_hit_tokens,
        "prompt_tokens": s.prompt_tokens,
        "generated_tokens": s.generated_tokens,
        "finished_requests": s.finished_requests,
        "aborted_requests": s.aborted_requests,
        "rejected_requests": s.rejected_requests,
    })
}
