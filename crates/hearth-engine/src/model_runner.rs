//! Assembles one step's flattened batch from the plan and runs the model on it.

use hearth_models::{BatchInput, CausalLm, KvCache, ModelError, Next, Pick, SeqInput};

use crate::scheduler::{Scheduler, StepPlan};

pub struct ModelRunner {
    model: Box<dyn CausalLm>,
    cache: KvCache,
    batch: BatchInput,
}

impl ModelRunner {
    pub fn new(model: Box<dyn CausalLm>, cache: KvCache) -> Self {
        ModelRunner {
            model,
            cache,
            batch: BatchInput::default(),
        }
    }

    pub fn model(&self) -> &dyn CausalLm {
        self.model.as_ref()
    }

    /// Makes the plan's K/V copies, then runs the planned step; returns per entry, when
    /// the entry reaches the end of its sequence (so a token is to be sampled), the
    /// logits of its last position, or its token where the model chose a plain argmax
    /// itself.
    pub fn step(
        &mut self,
        plan: &StepPlan,
        sched: &Scheduler,
    ) -> Result<Vec<Option<Next>>, ModelError> {
        for c in &plan.copies {
            self.cache.copy_leading_slots(c)?;
        }
        self.fill_batch(plan, sched);
        let out = self.model.step(&self.batch, &mut self.cache)?;
        Ok(out
            .into_iter()
            .zip(&self.batch.seqs)
            .map(|(n, s)| s.needs_logits.then_some(n))
            .collect())
    }

    /// The whole logits row of entry `i` of the last step (one that got `Next::Top`).
    pub fn last_logits(&mut self, i: usize) -> Result<Vec<f32>, ModelError> {
        self.model.last_logits(i)
    }

    /// Gives the step's logits vectors back to the model, once sampled from.
    pub fn recycle(&mut self, logits: Vec<Vec<f32>>) {
        self.model.recycle(logits);
    }

    fn fill_batch(&mut self, plan: &StepPlan, sched: &Scheduler) {
        let block_size = sched.blocks.block_size();
        let b = &mut self.batch;
        b.tokens.clear();
        b.positions.clear();
        b.slot_mapping.clear();
        b.seqs.clear();
        for &(id, n) in &plan.entries {
            let seq = &sched.seqs[&id];
            let start = seq.num_computed;
            for pos in start..start + n {
                b.tokens.push(seq.token_ids[pos]);
                b.positions.push(pos as u32);
                let block = seq.block_table[pos / block_size];
                b.slot_mapping
                    .push(block * block_size as u32 + (pos % block_size) as u32);
            }
            let needs_logits = start + n == seq.len();
            b.seqs.push(SeqInput {
                block_table: seq.block_table.clone(),
                num_computed: start,
                num_new: n,
                needs_logits,
                pick: if needs_logits {
                    seq.next_pick()
                } else {
                    Pick::Row
                },
            });
        }
    }
}
