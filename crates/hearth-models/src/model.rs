//! The contract between the engine and any architecture.

use crate::{BatchInput, KvCache, ModelError};

/// Shape facts the engine needs to size the KV cache and validate requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub architecture: String,
    pub num_layers: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    /// Longest context the model was trained for.
    pub max_context: usize,
}

/// A causal language model that reads and writes the paged KV cache.
pub trait CausalLm: Send {
    fn spec(&self) -> &ModelSpec;

    /// Runs one step. Writes K/V of every token of `batch` into `cache` at its slot,
    /// attends over each sequence's block table, and returns the logits of the last
    /// position of every sequence with `needs_logits` (in `batch.seqs` order; others
    /// get an empty vector).
    fn forward(
        &mut self,
        batch: &BatchInput,
        cache: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError>;

    /// `forward`, except that a sequence with `greedy` set may get its next token (the
    /// first index of its largest logit) instead of its logits: a model that computes
    /// them on a device then moves a token, not a vocabulary of floats. The default
    /// returns `forward`'s logits for every sequence.
    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        Ok(self
            .forward(batch, cache)?
            .into_iter()
            .map(Next::Logits)
            .collect())
    }

    /// Whether the model keeps K/V in its own (device) memory: the engine's `KvCache`
    /// then only describes the layout and holds no host storage.
    fn kv_on_device(&self) -> bool {
        false
    }

    /// Hands back logits vectors `forward` returned, once read, for reuse (a model
    /// that fills vocabulary-sized vectors every step saves their allocation).
    fn recycle(&mut self, _logits: Vec<Vec<f32>>) {}
}

/// What a step gives back for one sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The logits of its last position (empty when it wanted none).
    Logits(Vec<f32>),
    /// Its greedy next token, chosen by the model (only for sequences with `greedy`).
    Token(u32),
}
