//! Engine sizing knobs (vLLM names where they mean the same).

use hearth_models::KvDtype;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Tokens per KV block.
    pub block_size: usize,
    /// Bytes of KV cache to allocate at start-up.
    pub kv_cache_bytes: usize,
    /// What K and V are stored in (CPU models; a GPU model keeps its own).
    pub kv_cache_dtype: KvDtype,
    /// Longest prompt + output a request may have (defaults to the model's context).
    pub max_model_len: usize,
    /// Sequences in one step at most.
    pub max_num_seqs: usize,
    /// Tokens in one step at most (prefill chunks are cut to fit).
    pub max_num_batched_tokens: usize,
    pub enable_prefix_caching: bool,
    /// Requests waiting beyond this are refused with `Overloaded`.
    pub max_waiting: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            block_size: 16,
            kv_cache_bytes: 1 << 30,
            kv_cache_dtype: KvDtype::F32,
            max_model_len: 8192,
            max_num_seqs: 64,
            max_num_batched_tokens: 512,
            enable_prefix_caching: true,
            max_waiting: 1024,
        }
    }
}
