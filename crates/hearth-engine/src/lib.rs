//! hearth-engine: requests in, token streams out.
//!
//! The engine thread owns the model and the paged KV cache. Each step the
//! `Scheduler` picks sequences under a token budget, the `BlockManager` gives them
//! KV blocks (reusing cached prefix blocks), the `ModelRunner` assembles the batch,
//! the `Sampler` picks tokens, and the `StopChecker` turns them into text deltas.
//! Async callers talk to it through `EngineHandle`.

pub mod block_manager;
pub mod config;
pub mod constraint;
mod draw;
pub mod engine;
pub mod error;
pub mod handle;
pub mod model_runner;
pub mod sampler;
pub mod scheduler;
pub mod sequence;
pub mod stats;
pub mod stop;
#[cfg(test)]
mod test_rng;
pub mod types;

pub use config::EngineConfig;
pub use constraint::SharedConstraint;
pub use error::EngineError;
pub use handle::{EngineHandle, RequestStream};
pub use stats::EngineStats;
pub use types::{Event, FinishReason, Request, SamplingParams, TokenLogprob, Usage};
