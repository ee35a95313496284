//! Attention over the paged KV cache: one kernel per backend behind one trait.
//!
//! A step's tokens are flattened (varlen): row `t` of `q` belongs to sequence
//! `meta.token_seq[t]` and sits at position `batch.positions[t]`; it attends to that
//! sequence's keys `0..=position`, read through its block table.

pub mod cpu;
mod cpu_kernels;
mod kv_elem;
pub use kv_elem::KvElem;

use crate::{BatchInput, KvCache, KvCacheLayout, ModelError, ModelSpec};
use candle_core::Tensor;

pub use cpu::CpuPagedAttention;

/// Per-step facts shared by every layer, checked once against the batch and the pool.
#[derive(Debug, Clone)]
pub struct AttnMeta {
    /// Sequence index (into `batch.seqs`) of each token row.
    pub token_seq: Vec<u32>,
    /// Row of the last token of each sequence (meaningful when `num_new > 0`).
    pub last_row: Vec<usize>,
}

impl AttnMeta {
    /// `new`, after checking that the cache is shaped for `spec` and every token is in
    /// its vocabulary (what every architecture checks before a step).
    pub fn for_model(
        spec: &ModelSpec,
        batch: &BatchInput,
        cache: &KvCache,
    ) -> Result<Self, ModelError> {
        let l = &cache.layout;
        if l.num_layers != spec.num_layers
            || l.num_kv_heads != spec.num_kv_heads
            || l.head_dim != spec.head_dim
        {
            return Err(ModelError::BadBatch(format!(
                "KV cache is {} layers x {} heads x {}, model needs {} x {} x {}",
                l.num_layers,
                l.num_kv_heads,
                l.head_dim,
                spec.num_layers,
                spec.num_kv_heads,
                spec.head_dim
            )));
        }
        if let Some(t) = batch
            .tokens
            .iter()
            .find(|&&t| t as usize >= spec.vocab_size)
        {
            return Err(ModelError::BadBatch(format!(
                "token {t} outside vocab of {}",
                spec.vocab_size
            )));
        }
        AttnMeta::new(batch, l)
    }

    /// Validates `batch` so the kernels can index without checks: lengths agree, every
    /// token sits at `num_computed + j`, its slot is where its block table says, and
    /// every block id is inside the pool.
    pub fn new(batch: &BatchInput, layout: &KvCacheLayout) -> Result<Self, ModelError> {
        let bad = |m: String| Err(ModelError::BadBatch(m));
        let n = batch.tokens.len();
        if batch.positions.len() != n || batch.slot_mapping.len() != n {
            return bad(format!(
                "{n} tokens but {} positions and {} slots",
                batch.positions.len(),
                batch.slot_mapping.len()
            ));
        }
        let total: usize = batch.seqs.iter().map(|s| s.num_new).sum();
        if total != n {
            return bad(format!("sequences claim {total} new tokens, batch has {n}"));
        }
        let bs = layout.block_size;
        let mut token_seq = Vec::with_capacity(n);
        let mut last_row = Vec::with_capacity(batch.seqs.len());
        let mut row = 0usize;
        for (s, seq) in batch.seqs.iter().enumerate() {
            if seq.needs_logits && seq.num_new == 0 {
                return bad(format!("sequence {s} wants logits but feeds no token"));
            }
            let ctx = seq.num_computed + seq.num_new;
            if seq.block_table.len() * bs < ctx {
                return bad(format!(
                    "sequence {s}: block table too short for {ctx} tokens"
                ));
            }
            if let Some(b) = seq
                .block_table
                .iter()
                .find(|&&b| b as usize >= layout.num_blocks)
            {
                return bad(format!(
                    "sequence {s}: block {b} outside pool of {}",
                    layout.num_blocks
                ));
            }
            for j in 0..seq.num_new {
                let t = row + j;
                let pos = seq.num_computed + j;
                if batch.positions[t] as usize != pos {
                    return bad(format!(
                        "token {t}: position {} != {pos}",
                        batch.positions[t]
                    ));
                }
                let slot = seq.block_table[pos / bs] as usize * bs + pos % bs;
                if batch.slot_mapping[t] as usize != slot {
                    return bad(format!(
                        "token {t}: slot {} != {slot}",
                        batch.slot_mapping[t]
                    ));
                }
                token_seq.push(s as u32);
            }
            row += seq.num_new;
            last_row.push(row.saturating_sub(1));
        }
        Ok(AttnMeta {
            token_seq,
            last_row,
        })
    }
}

/// Shapes a kernel needs beyond the pool's layout.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    /// Sliding window (Gemma 3 local layers): a token at position `p` sees only keys
    /// `p + 1 - window ..= p`; blocks wholly before that are never read.
    pub window: Option<usize>,
    /// Attention-logit soft-capping: scores become `cap * tanh(score / cap)`.
    pub softcap: Option<f32>,
}

/// One implementation per backend.
pub trait PagedAttention: Send + Sync {
    /// Stores K and V (`[T, num_kv_heads * head_dim]`) of this step in `layer` at the
    /// batch's slots.
    fn write_kv(
        &self,
        cache: &mut KvCache,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
        batch: &BatchInput,
    ) -> Result<(), ModelError>;

    /// Causal attention of `q` (`[T, num_heads * head_dim]`, rope applied) over the
    /// cached keys/values of `layer`; returns `[T, num_heads * head_dim]`.
    fn attend(
        &self,
        q: &Tensor,
        cache: &KvCache,
        layer: usize,
        batch: &BatchInput,
        meta: &AttnMeta,
        shape: AttnShape,
    ) -> Result<Tensor, ModelError>;
}
