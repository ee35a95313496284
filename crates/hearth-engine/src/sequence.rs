//! One request as the engine sees it: its tokens, its place in the KV cache and its
//! progress.

use hearth_text::Constraint;
use tokio::sync::mpsc::UnboundedSender;

use hearth_models::Pick;

use crate::sampler::SeqRng;
use crate::stop::StopChecker;
use crate::types::{Event, SamplingParams};

pub type SeqId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    Waiting,
    Running,
}

pub struct Sequence {
    pub id: SeqId,
    /// Prompt then generated tokens; generated ones are part of the context.
    pub token_ids: Vec<u32>,
    pub prompt_len: usize,
    /// Tokens whose K/V are in the cache.
    pub num_computed: usize,
    /// Physical blocks holding this sequence's K/V, in logical order.
    pub block_table: Vec<u32>,
    /// Leading blocks of `block_table` already registered in the prefix cache.
    pub num_hashed_blocks: usize,
    pub status: SeqStatus,
    pub params: SamplingParams,
    pub rng: SeqRng,
    pub stop: StopChecker,
    pub events: UnboundedSender<Event>,
    /// Prompt tokens served from the prefix cache on first admission.
    pub cached_prompt_tokens: usize,
    /// Whether this sequence has been admitted once (prefix hits are counted once).
    pub admitted_once: bool,
    /// This sequence's own structured-output matcher, if the request has one.
    pub constraint: Option<Constraint>,
}

impl Sequence {
    pub fn len(&self) -> usize {
        self.token_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.token_ids.is_empty()
    }

    pub fn num_generated(&self) -> usize {
        self.token_ids.len() - self.prompt_len
    }

    pub fn generated(&self) -> &[u32] {
        &self.token_ids[self.prompt_len..]
    }

    /// What the sampler reads of the logits for its next token: less than the row
    /// (a plain argmax, or the row's head for temperature sampling) only where its
    /// parameters ask for nothing more, no grammar masks it, and `min_tokens` bans no
    /// ids (so the model may choose the token, or the head suffices).
    pub fn next_pick(&self) -> Pick {
        if self.constraint.is_some() || self.min_tokens_bans() {
            return Pick::Row;
        }
        crate::sampler::plain_pick(&self.params)
    }

    /// Whether `min_tokens` bans ids from the next token: before it is reached, the stop
    /// ids, and EOS unless it is ignored (with `ignore_eos` and no stop ids it bans
    /// nothing, as a benchmark's fixed-length requests ask).
    pub fn min_tokens_bans(&self) -> bool {
        let p = &self.params;
        self.num_generated() < p.min_tokens && (!p.ignore_eos || !p.stop_token_ids.is_empty())
    }

    /// Tokens still to be fed to the model before the next sample.
    pub fn num_uncomputed(&self) -> usize {
        self.token_ids.len() - self.num_computed
    }

    /// Forgets the cache state (after preemption): everything is recomputed later.
    pub fn reset_for_recompute(&mut self) {
        self.num_computed = 0;
        self.block_table.clear();
        self.num_hashed_blocks = 0;
        self.status = SeqStatus::Waiting;
    }
}
