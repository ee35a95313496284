//! Engine counters, updated by the engine thread with atomics (no lock on the hot path)
//! and read by anyone (tests, /metrics, bench).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct EngineStats {
    pub total_blocks: AtomicU64,
    pub used_blocks: AtomicU64,
    /// Blocks free but still holding a cached prefix (reusable on a hit).
    pub cached_free_blocks: AtomicU64,
    pub running: AtomicU64,
    pub waiting: AtomicU64,
    /// Accepted requests never yet scheduled: the bounded admission queue.
    pub queued: AtomicU64,
    pub steps: AtomicU64,
    pub preemptions: AtomicU64,
    pub prefix_cache_queries: AtomicU64,
    /// Prompt tokens served from the prefix cache.
    pub prefix_cache_hit_tokens: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub finished_requests: AtomicU64,
    pub aborted_requests: AtomicU64,
    /// Submits refused because the admission queue was full (503s).
    pub rejected_requests: AtomicU64,
    /// Unix milliseconds of the engine loop's last pass (with the counts above).
    pub heartbeat_ms: AtomicU64,
}

/// A plain copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub total_blocks: u64,
    pub used_blocks: u64,
    pub cached_free_blocks: u64,
    pub running: u64,
    pub waiting: u64,
    pub queued: u64,
    pub steps: u64,
    pub preemptions: u64,
    pub prefix_cache_queries: u64,
    pub prefix_cache_hit_tokens: u64,
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub finished_requests: u64,
    pub aborted_requests: u64,
    pub rejected_requests: u64,
    pub heartbeat_ms: u64,
}

impl EngineStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            total_blocks: r(&self.total_blocks),
            used_blocks: r(&self.used_blocks),
            cached_free_blocks: r(&self.cached_free_blocks),
            running: r(&self.running),
            waiting: r(&self.waiting),
            queued: r(&self.queued),
            steps: r(&self.steps),
            preemptions: r(&self.preemptions),
            prefix_cache_queries: r(&self.prefix_cache_queries),
            prefix_cache_hit_tokens: r(&self.prefix_cache_hit_tokens),
            prompt_tokens: r(&self.prompt_tokens),
            generated_tokens: r(&self.generated_tokens),
            finished_requests: r(&self.finished_requests),
            aborted_requests: r(&self.aborted_requests),
            rejected_requests: r(&self.rejected_requests),
            heartbeat_ms: r(&self.heartbeat_ms),
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
