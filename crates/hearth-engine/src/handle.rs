//! The async face of the engine: submit, stream, abort, stats.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use hearth_models::{CausalLm, KvCache, KvCacheLayout};
use hearth_text::Tokenizer;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::block_manager::BlockManager;
use crate::config::EngineConfig;
use crate::engine::{Command, Engine};
use crate::error::EngineError;
use crate::model_runner::ModelRunner;
use crate::scheduler::Scheduler;
use crate::stats::{EngineStats, StatsSnapshot};
use crate::types::{Event, Request};

#[derive(Clone)]
pub struct EngineHandle {
    commands: Sender<Command>,
    stats: Arc<EngineStats>,
    next_id: Arc<AtomicU64>,
    config: Arc<EngineConfig>,
    num_blocks: usize,
    /// True while the engine thread runs (cleared when it returns or panics).
    alive: Arc<AtomicBool>,
}

/// Clears the liveness flag when the engine thread ends, by return or by panic.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl EngineHandle {
    /// Allocates the KV cache from the configured budget and starts the engine thread.
    pub fn start(
        model: Box<dyn CausalLm>,
        tokenizer: Arc<Tokenizer>,
        mut config: EngineConfig,
    ) -> Result<EngineHandle, EngineError> {
        let spec = model.spec().clone();
        config.max_model_len = config.max_model_len.min(spec.max_context).max(1);
        let num_blocks = KvCacheLayout::blocks_for_budget(
            spec.num_layers,
            spec.num_kv_heads,
            spec.head_dim,
            config.block_size,
            config.kv_cache_bytes,
            config.kv_cache_dtype,
        );
        if num_blocks == 0 {
            return Err(EngineError::InvalidParams(format!(
                "a KV cache budget of {} bytes holds no block of {} tokens",
                config.kv_cache_bytes, config.block_size
            )));
        }
        let layout = KvCacheLayout {
            num_layers: spec.num_layers,
            num_kv_heads: spec.num_kv_heads,
            head_dim: spec.head_dim,
            block_size: config.block_size,
            num_blocks,
        };
        let stats = Arc::new(EngineStats::default());
        stats
            .total_blocks
            .store(num_blocks as u64, Ordering::Relaxed);
        // A hit that ends inside a block copies K/V in host memory (`KvCache`).
        let blocks = BlockManager::new(num_blocks, config.block_size, config.enable_prefix_caching)
            .with_partial_hits(!model.kv_on_device());
        let scheduler = Scheduler::new(blocks, config.max_num_seqs, config.max_num_batched_tokens);
        // A model with its K/V on the GPU needs no host pool of the same size.
        let cache = if model.kv_on_device() {
            KvCache::layout_only(layout, config.kv_cache_dtype)
        } else {
            KvCache::with_dtype(layout, config.kv_cache_dtype)
        };
        let runner = ModelRunner::new(model, cache);
        let engine = Engine::new(
            scheduler,
            runner,
            tokenizer,
            stats.clone(),
            config.max_model_len,
        );
        let (tx, rx) = mpsc::channel();
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        std::thread::Builder::new()
            .name("hearth-engine".into())
            .spawn(move || {
                let _guard = guard;
                engine.run(rx)
            })
            .map_err(|e| EngineError::Model(format!("cannot start the engine thread: {e}")))?;
        Ok(EngineHandle {
            commands: tx,
            stats,
            next_id: Arc::new(AtomicU64::new(1)),
            config: Arc::new(config),
            num_blocks,
            alive,
        })
    }

    /// Validates and queues a request; its events arrive on the returned stream.
    pub fn submit(&self, request: Request) -> Result<RequestStream, EngineError> {
        self.validate(&request)?;
        // Reserve a queue place first so concurrent submits cannot overshoot the bound.
        let queued = self.stats.queued.fetch_add(1, Ordering::Relaxed) as usize;
        if queued >= self.config.max_waiting {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return Err(EngineError::Overloaded(queued));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = unbounded_channel();
        self.commands
            .send(Command::Submit {
                id,
                request,
                events: tx,
            })
            .map_err(|_| {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                EngineError::Stopped
            })?;
        Ok(RequestStream {
            id,
            events: rx,
            commands: self.commands.clone(),
            finished: false,
        })
    }

    fn validate(&self, r: &Request) -> Result<(), EngineError> {
        let prompt = r.prompt_ids.len();
        if prompt == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        let p = &r.params;
        if p.max_tokens == 0 {
            return Err(EngineError::InvalidParams(
                "max_tokens must be at least 1".into(),
            ));
        }
        if p.min_tokens > p.max_tokens {
            return Err(EngineError::InvalidParams(
                "min_tokens must not exceed max_tokens".into(),
            ));
        }
        let max = self.config.max_model_len;
        let requested = prompt.saturating_add(p.max_tokens);
        if requested > max {
            return Err(EngineError::ContextTooLong {
                max,
                requested,
                prompt,
                max_tokens: p.max_tokens,
            });
        }
        let needed = requested.div_ceil(self.config.block_size);
        if needed > self.num_blocks {
            return Err(EngineError::TooLargeForCache {
                needed,
                total: self.num_blocks,
            });
        }
        Ok(())
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Whether the engine thread is still running (it stops only by panic or when
    /// every handle is gone): a cheap liveness signal for readiness checks.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Alive, and either idle or through a loop pass within `stall` (a step that
    /// never returns leaves work counted and the heartbeat old).
    pub fn is_stepping(&self, stall: std::time::Duration) -> bool {
        let s = self.stats.snapshot();
        let idle = s.running == 0 && s.waiting == 0;
        let age = crate::stats::unix_ms().saturating_sub(s.heartbeat_ms);
        self.is_alive() && (idle || u128::from(age) < stall.as_millis())
    }

    pub fn max_model_len(&self) -> usize {
        self.config.max_model_len
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}

/// A request's events. Dropping it before the end aborts the request, which frees its
/// KV blocks at once.
pub struct RequestStream {
    id: u64,
    events: UnboundedReceiver<Event>,
    commands: Sender<Command>,
    finished: bool,
}

impl RequestStream {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let ev = self.events.recv().await;
        if matches!(
            ev,
            None | Some(Event::Finished { .. }) | Some(Event::Error(_))
        ) {
            self.finished = true;
        }
        ev
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.commands.send(Command::Abort(self.id));
        }
    }
}
