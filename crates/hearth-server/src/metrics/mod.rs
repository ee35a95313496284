//! Prometheus metrics. Request metrics are recorded by an observer (`observer.rs`)
//! once each response ends; engine gauges and counters are read from the engine's
//! `StatsSnapshot` at scrape time. Everything goes into a recorder this server owns,
//! not the process-wide one, so several servers in one process stay apart.
//! Labels are bounded: a known route (or "other") and a status code, never content.

mod endpoint;
mod observer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ::metrics::{counter, gauge, with_local_recorder};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use hearth_engine::stats::StatsSnapshot;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::state::AppState;

pub use endpoint::endpoint_label;

pub const REQUESTS: &str = "hearth_requests_total";
pub const TTFT: &str = "hearth_time_to_first_token_seconds";
pub const TPOT: &str = "hearth_time_per_output_token_seconds";
pub const E2E: &str = "hearth_e2e_request_latency_seconds";
pub const PROMPT_TOKENS: &str = "hearth_prompt_tokens_total";
pub const GENERATION_TOKENS: &str = "hearth_generation_tokens_total";

const TTFT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
];
const TPOT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
];
const E2E_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

pub struct ServerMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Requests seen since the last upkeep (histogram buffers are drained then).
    since_upkeep: AtomicU64,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMetrics {
    pub fn new() -> ServerMetrics {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in [
            (TTFT, TTFT_BUCKETS),
            (TPOT, TPOT_BUCKETS),
            (E2E, E2E_BUCKETS),
        ] {
            // Only an empty bucket list is refused, and these are constants.
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                .expect("bucket lists are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let m = ServerMetrics {
            recorder,
            handle,
            since_upkeep: AtomicU64::new(0),
        };
        with_local_recorder(&m.recorder, observer::describe);
        m
    }

    /// The Prometheus text exposition, with the engine's numbers as of now.
    pub fn render(&self, s: &StatsSnapshot) -> String {
        with_local_recorder(&self.recorder, || record_engine(s));
        self.handle.render()
    }
}

/// Engine numbers: gauges as they are now, counters as totals since start.
fn record_engine(s: &StatsSnapshot) {
    gauge!("hearth_num_requests_running").set(s.running as f64);
    gauge!("hearth_num_requests_waiting").set(s.waiting as f64);
    gauge!("hearth_queue_length").set(s.queued as f64);
    gauge!("hearth_kv_blocks_used").set(s.used_blocks as f64);
    gauge!("hearth_kv_blocks_total").set(s.total_blocks as f64);
    gauge!("hearth_kv_blocks_cached_free").set(s.cached_free_blocks as f64);
    let rate = if s.prefix_cache_queries == 0 {
        0.0
    } else {
        s.prefix_cache_hit_tokens as f64 / s.prefix_cache_queries as f64
    };
    gauge!("hearth_prefix_cache_hit_rate").set(rate);
    counter!("hearth_prefix_cache_queried_tokens_total").absolute(s.prefix_cache_queries);
    counter!("hearth_prefix_cache_hit_tokens_total").absolute(s.prefix_cache_hit_tokens);
    counter!("hearth_preemptions_total").absolute(s.preemptions);
    counter!("hearth_queue_rejections_total").absolute(s.rejected_requests);
    counter!("hearth_aborted_requests_total").absolute(s.aborted_requests);
    counter!("hearth_engine_steps_total").absolute(s.steps);
}

/// GET /metrics
#[utoipa::path(get, path = "/metrics", tag = "Operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let body = st.metrics.render(&st.engine.stats());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
}
