//! The flattened (variable-length) batch one engine step hands to a model.

/// One sequence's share of a step.
#[derive(Debug, Clone)]
pub struct SeqInput {
    /// Physical KV block ids, in logical order; covers `num_computed + num_new` tokens.
    pub block_table: Vec<u32>,
    /// Tokens of this sequence whose K/V are already in the cache (prefix hits + earlier steps).
    pub num_computed: usize,
    /// Tokens of this sequence fed in this step (a prefill chunk, or 1 for decode).
    pub num_new: usize,
    /// Whether the engine will sample from this sequence's last position this step.
    pub needs_logits: bool,
    /// What the engine reads of those logits: a model may return less than the row
    /// (`CausalLm::step`).
    pub pick: Pick,
}

/// What the engine will do with a sequence's logits this step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Pick {
    /// Reads the whole row (penalties, bias, banned ids, a grammar, logprobs).
    #[default]
    Row,
    /// Takes its first largest logit and nothing else: a model may return that token.
    Argmax,
    /// Samples at this temperature, with top-k, top-p and min-p at most: a model may
    /// return the row's head (`TopLogits`), and the row itself when asked for it.
    Sample { temperature: f32 },
}

/// All tokens of a step, sequence after sequence.
///
/// `tokens[i]` sits at `positions[i]` and its K/V go to cache slot `slot_mapping[i]`
/// (`block_id * block_size + offset`). Sequence `s` owns `seqs[s].num_new` consecutive
/// entries, in the order of `seqs`.
#[derive(Debug, Clone, Default)]
pub struct BatchInput {
    pub tokens: Vec<u32>,
    pub positions: Vec<u32>,
    pub slot_mapping: Vec<u32>,
    pub seqs: Vec<SeqInput>,
}

impl BatchInput {
    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }
}
