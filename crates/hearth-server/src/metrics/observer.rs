//! Request metrics, recorded once per request when its response has ended.

use std::sync::atomic::Ordering;

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, histogram, with_local_recorder,
    Unit,
};

use super::{
    endpoint_label, ServerMetrics, E2E, GENERATION_TOKENS, PROMPT_TOKENS, REQUESTS, TPOT, TTFT,
};
use crate::context::{FinishedRequest, RequestObserver};

/// Histogram samples wait in buffers until a scrape or an upkeep drains them; an
/// upkeep every this many requests bounds them when nothing scrapes.
const UPKEEP_EVERY: u64 = 1024;

impl RequestObserver for ServerMetrics {
    fn finished(&self, r: &FinishedRequest) {
        with_local_recorder(&self.recorder, || record_request(r));
        if self.since_upkeep.fetch_add(1, Ordering::Relaxed) + 1 >= UPKEEP_EVERY {
            self.since_upkeep.store(0, Ordering::Relaxed);
            self.handle.run_upkeep();
        }
    }
}

fn record_request(r: &FinishedRequest) {
    let endpoint = endpoint_label(&r.endpoint);
    counter!(REQUESTS, "endpoint" => endpoint, "status" => r.status.to_string()).increment(1);
    histogram!(E2E, "endpoint" => endpoint).record(r.latency.as_secs_f64());
    let f = &r.fields;
    if f.prompt_tokens > 0 {
        counter!(PROMPT_TOKENS, "endpoint" => endpoint).increment(f.prompt_tokens as u64);
    }
    if f.completion_tokens > 0 {
        counter!(GENERATION_TOKENS, "endpoint" => endpoint).increment(f.completion_tokens as u64);
    }
    if let Some(first) = f.first_token {
        histogram!(TTFT, "endpoint" => endpoint).record(first.as_secs_f64());
        // Decode time spread over the tokens after the first.
        if let Some(done) = f.generation_done.filter(|_| f.completion_tokens > 1) {
            let per = done.saturating_sub(first).as_secs_f64() / (f.completion_tokens - 1) as f64;
            histogram!(TPOT, "endpoint" => endpoint).record(per);
        }
    }
}

/// HELP lines (and units) for every metric hearth exports.
pub(super) fn describe() {
    describe_counter!(REQUESTS, "HTTP requests by route and status code");
    describe_histogram!(
        E2E,
        Unit::Seconds,
        "From arrival to the end of the response body"
    );
    describe_histogram!(
        TTFT,
        Unit::Seconds,
        "From arrival to the first generated token"
    );
    describe_histogram!(
        TPOT,
        Unit::Seconds,
        "Time per generated token after the first"
    );
    describe_counter!(
        PROMPT_TOKENS,
        Unit::Count,
        "Prompt tokens of finished requests"
    );
    describe_counter!(
        GENERATION_TOKENS,
        Unit::Count,
        "Generated tokens of finished requests"
    );
    describe_gauge!(
        "hearth_num_requests_running",
        "Sequences in the running batch"
    );
    describe_gauge!(
        "hearth_num_requests_waiting",
        "Sequences waiting to be scheduled (preempted included)"
    );
    describe_gauge!(
        "hearth_queue_length",
        "Accepted requests never yet scheduled"
    );
    describe_gauge!("hearth_kv_blocks_used", "KV cache blocks held by sequences");
    describe_gauge!("hearth_kv_blocks_total", "KV cache blocks in the pool");
    describe_gauge!(
        "hearth_kv_blocks_cached_free",
        "Free KV blocks still holding a cached prefix"
    );
    describe_gauge!(
        "hearth_prefix_cache_hit_rate",
        "Prompt tokens served from the prefix cache / tokens looked up, since start"
    );
    describe_counter!(
        "hearth_prefix_cache_queried_tokens_total",
        "Prompt tokens looked up in the prefix cache"
    );
    describe_counter!(
        "hearth_prefix_cache_hit_tokens_total",
        "Prompt tokens served from the prefix cache"
    );
    describe_counter!(
        "hearth_preemptions_total",
        "Sequences preempted for lack of KV blocks (recomputed later)"
    );
    describe_counter!(
        "hearth_queue_rejections_total",
        "Requests refused with 503 because the queue was full"
    );
    describe_counter!(
        "hearth_aborted_requests_total",
        "Requests aborted before they finished (client gone)"
    );
    describe_counter!("hearth_engine_steps_total", "Engine forward steps");
}
