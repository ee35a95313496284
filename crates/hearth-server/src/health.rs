//! GET /health (liveness) and GET /stats (engine counters as JSON; no request content).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use hearth_engine::stats::StatsSnapshot;
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn stats(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(stats_json(&st.engine.stats(), st.engine.max_model_len()))
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
