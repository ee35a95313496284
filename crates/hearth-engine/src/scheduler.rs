//! Which sequences run in the next step, and how many tokens each.
//!
//! Running sequences first (decodes and unfinished prefill chunks), then waiting ones
//! in arrival order, all under a per-step token budget and a sequence cap. When KV
//! blocks run out, the newest running sequence is preempted: its blocks are freed and
//! it goes back to the front of the queue to be recomputed later. Nothing is dropped.

use std::collections::{HashMap, VecDeque};

use hearth_models::KvCopy;

use crate::block_manager::{BlockManager, PartialHit};
use crate::sequence::{SeqId, SeqStatus, Sequence};

pub struct Scheduler {
    pub seqs: HashMap<SeqId, Sequence>,
    pub blocks: BlockManager,
    waiting: VecDeque<SeqId>,
    running: Vec<SeqId>,
    max_num_seqs: usize,
    max_num_batched_tokens: usize,
}

/// One step's plan: (sequence, tokens to feed) in batch order.
#[derive(Debug, Default)]
pub struct StepPlan {
    pub entries: Vec<(SeqId, usize)>,
    pub preempted: usize,
    /// Prompt tokens looked up in, and served from, the prefix cache this step.
    pub prefix_query_tokens: usize,
    pub prefix_hit_tokens: usize,
    /// Requests admitted for the first time (they leave the admission queue).
    pub newly_admitted: usize,
    /// K/V to copy before the step runs: prefix hits that end inside a cached block.
    /// Their source blocks stay referenced until `Scheduler::copied`.
    pub copies: Vec<KvCopy>,
}

impl Scheduler {
    pub fn new(blocks: BlockManager, max_num_seqs: usize, max_num_batched_tokens: usize) -> Self {
        Scheduler {
            seqs: HashMap::new(),
            blocks,
            waiting: VecDeque::new(),
            running: Vec::new(),
            max_num_seqs: max_num_seqs.max(1),
            max_num_batched_tokens: max_num_batched_tokens.max(1),
        }
    }

    pub fn add(&mut self, seq: Sequence) {
        self.waiting.push_back(seq.id);
        self.seqs.insert(seq.id, seq);
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty()
    }

    pub fn schedule(&mut self) -> StepPlan {
        let mut plan = StepPlan::default();
        let mut budget = self.max_num_batched_tokens;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let id = self.running[i];
            let n = self.seqs[&id].num_uncomputed().min(budget);
            if self.grow(id, n) {
                plan.entries.push((id, n));
                budget -= n;
                i += 1;
                continue;
            }
            // Out of blocks: preempt from the back until this one fits or is the victim.
            let victim = self.running.pop().expect("running holds at least `id`");
            self.preempt(victim);
            plan.preempted += 1;
        }
        if plan.preempted == 0 {
            self.admit_waiting(&mut plan, budget);
        }
        plan
    }

    fn admit_waiting(&mut self, plan: &mut StepPlan, mut budget: usize) {
        while budget > 0 && self.running.len() < self.max_num_seqs {
            let Some(&id) = self.waiting.front() else {
                break;
            };
            let seq = self.seqs.get_mut(&id).expect("waiting ids are live");
            let mut partial = None;
            if seq.block_table.is_empty() {
                let hit = self.blocks.take_cached_prefix(&seq.token_ids);
                seq.num_computed = hit.num_tokens(self.blocks.block_size());
                seq.num_hashed_blocks = hit.blocks.len();
                seq.block_table = hit.blocks;
                partial = hit.partial;
                if !seq.admitted_once {
                    seq.cached_prompt_tokens = seq.num_computed;
                    plan.prefix_query_tokens += seq.prompt_len;
                    plan.prefix_hit_tokens += seq.num_computed;
                }
            }
            let n = seq.num_uncomputed().min(budget);
            if !self.grow(id, n) {
                // Not now: give back the prefix hits so their blocks stay evictable.
                let seq = self.seqs.get_mut(&id).expect("live");
                self.blocks.free(&seq.block_table);
                seq.reset_for_recompute();
                if let Some(p) = partial {
                    self.blocks.release(p.src);
                }
                break;
            }
            self.waiting.pop_front();
            self.running.push(id);
            let seq = self.seqs.get_mut(&id).expect("live");
            if let Some(PartialHit { src, tokens }) = partial {
                // `grow` gave the sequence the block its partial hit's tokens go to.
                let dst = seq.block_table[seq.num_hashed_blocks];
                plan.copies.push(KvCopy {
                    src,
                    dst,
                    slots: tokens,
                });
            }
            seq.status = SeqStatus::Running;
            if !seq.admitted_once {
                plan.newly_admitted += 1;
            }
            seq.admitted_once = true;
            plan.entries.push((id, n));
            budget -= n;
        }
    }

    /// Makes room in `id`'s block table for `n` more tokens.
    fn grow(&mut self, id: SeqId, n: usize) -> bool {
        let seq = self.seqs.get_mut(&id).expect("scheduled ids are live");
        let target = seq.num_computed + n;
        self.blocks.allocate(&mut seq.block_table, target)
    }

    fn preempt(&mut self, id: SeqId) {
        let seq = self.seqs.get_mut(&id).expect("running ids are live");
        self.blocks.free(&seq.block_table);
        seq.reset_for_recompute();
        self.waiting.push_front(id);
    }

    /// Releases the source blocks of the plan's copies, once they are made (or the step
    /// failed).
    pub fn copied(&mut self, plan: &StepPlan) {
        for c in &plan.copies {
            self.blocks.release(c.src);
        }
    }

    /// Records that `n` tokens of `id` now have K/V in the cache.
    pub fn computed(&mut self, id: SeqId, n: usize) {
        if let Some(seq) = self.seqs.get_mut(&id) {
            seq.num_computed += n;
            let done = &seq.token_ids[..seq.num_computed];
            seq.num_hashed_blocks =
                self.blocks
                    .register_full_blocks(&seq.block_table, done, seq.num_hashed_blocks);
        }
    }

    /// Removes a sequence (finished or aborted) and frees its blocks at once.
    pub fn remove(&mut self, id: SeqId) -> Option<Sequence> {
        let seq = self.seqs.remove(&id)?;
        let computed = &seq.token_ids[..seq.num_computed];
        self.blocks.register_tail(&seq.block_table, computed);
        self.blocks.free(&seq.block_table);
        match seq.status {
            SeqStatus::Running => self.running.retain(|&r| r != id),
            SeqStatus::Waiting => self.waiting.retain(|&w| w != id),
        }
        Some(seq)
    }
}
