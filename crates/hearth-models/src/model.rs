//! The contract between the engine and any architecture.

use crate::{BatchInput, KvCache, ModelError, TopLogits};

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

    /// `forward`, except that a sequence may get less than its logits, as its `pick`
    /// allows: its next token for `Pick::Argmax` (the first index of its largest
    /// logit), the row's head for `Pick::Sample`. A model that computes logits on a
    /// device then moves a token or a few candidates, not a vocabulary of floats. The
    /// default returns `forward`'s logits for every sequence.
    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        Ok(self
            .forward(batch, cache)?
            .into_iter()
            .map(Next::Logits)
            .collect())
    }

    /// The logits of sequence `seq` (its index in the last step's `batch.seqs`) of the
    /// last step, for one that got `Next::Top` when the sampler needs the whole row.
    /// Valid until the next step.
    fn last_logits(&mut self, seq: usize) -> Result<Vec<f32>, ModelError> {
        Err(ModelError::Unsupported(format!(
            "this model keeps no logits of sequence {seq} after a step"
        )))
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
    /// Its greedy next token, chosen by the model (only for `Pick::Argmax`).
    Token(u32),
    /// The head of its logits row at the asked temperature (only for `Pick::Sample`):
    /// its `TOP_CANDIDATES` largest logits (all when it has fewer), so that the draw's
    /// order past the head is the same as the sampler's on the whole row.
    Top(TopLogits),
}
