//! hearth-models: weights in, logits out.
//!
//! Loads model files (GGUF today), builds architectures as candle modules that read
//! the paged KV cache, and checks model-file integrity. Knows nothing of requests,
//! scheduling or sampling.

pub mod batch;
pub mod error;
pub mod kv_cache;
pub mod model;

pub use batch::{BatchInput, SeqInput};
pub use error::ModelError;
pub use kv_cache::{KvCache, KvCacheLayout};
pub use model::{CausalLm, ModelSpec};
