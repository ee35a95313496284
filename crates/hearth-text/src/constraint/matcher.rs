//! `Constraint`: one sequence's position in its grammar, and the token masks it gives.

use llguidance::toktrie::SimpleVob;
use llguidance::Matcher;

use crate::error::{Result, TextError};

/// One sequence's matcher. Cloning is cheap (the compiled grammar is shared), so a
/// request compiles once and each of its sequences clones.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    vocab_size: usize,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("finished", &self.is_finished())
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}

impl Constraint {
    pub(crate) fn new(matcher: Matcher, vocab_size: usize) -> Constraint {
        Constraint {
            matcher,
            vocab_size,
        }
    }

    /// The tokens allowed at the next position; EOS is among them when the output may
    /// end here, and is the only one once `is_finished()`.
    pub fn mask(&mut self) -> Result<TokenMask> {
        let bits = self.matcher.compute_mask_or_eos().map_err(constraint_err)?;
        Ok(TokenMask { bits })
    }

    /// Advances past a sampled token; a token the mask did not allow is an error.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        self.matcher.consume_token(token).map_err(constraint_err)
    }

    /// Whether the output is complete and nothing but EOS may follow.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Whether the output so far is complete (it may still be extended).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Number of token ids the masks cover (the tokenizer's vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

fn constraint_err(e: impl std::fmt::Display) -> TextError {
    TextError::Constraint(e.to_string())
}

/// A set of allowed token ids.
#[derive(Clone, Debug)]
pub struct TokenMask {
    bits: SimpleVob,
}

impl TokenMask {
    pub fn allows(&self, id: u32) -> bool {
        (id as usize) < self.bits.len() && self.bits.is_allowed(id)
    }

    pub fn num_allowed(&self) -> usize {
        self.bits.num_set()
    }

    /// Sets every disallowed logit to -inf, ids past the vocabulary included (models
    /// often pad their output layer).
    pub fn apply(&self, logits: &mut [f32]) {
        let words = self.bits.as_slice();
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let word = words.get(w).copied().unwrap_or(0);
            if word == u32::MAX {
                continue;
            }
            for (bit, l) in chunk.iter_mut().enumerate() {
                if word & (1 << bit) == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        if let Some(rest) = logits.get_mut(self.bits.len()..) {
            rest.fill(f32::NEG_INFINITY);
        }
    }
}
