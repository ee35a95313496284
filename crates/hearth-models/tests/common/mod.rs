//! Shared helpers for hearth-models integration tests.
#![allow(dead_code)]

use hearth_models::{BatchInput, SeqInput};
use std::path::PathBuf;

/// The real SmolLM2 GGUF: `$HEARTH_TEST_MODEL`, else the store under `$HEARTH_HOME`.
/// Panics (fails the test) when neither exists, so a missing model is never a silent pass.
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HEARTH_TEST_MODEL") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "HEARTH_TEST_MODEL={} does not exist; run `scripts/test`",
            p.display()
        );
        return p;
    }
    let home = std::env::var_os("HEARTH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let h = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            h.join(".local/share/hearth")
        });
    let p = home.join("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model not found (HEARTH_TEST_MODEL unset, {} missing); run `scripts/test`",
        p.display()
    );
    p
}

/// One sequence's part of a step, before flattening.
pub struct Part<'a> {
    pub block_table: &'a [u32],
    pub num_computed: usize,
    pub tokens: &'a [u32],
    pub needs_logits: bool,
}

/// Flattens parts into a `BatchInput` with positions and slots derived from the tables.
pub fn batch(parts: &[Part], block_size: usize) -> BatchInput {
    let mut b = BatchInput::default();
    for p in parts {
        for (j, &t) in p.tokens.iter().enumerate() {
            let pos = p.num_computed + j;
            b.tokens.push(t);
            b.positions.push(pos as u32);
            b.slot_mapping.push(
                p.block_table[pos / block_size] * block_size as u32 + (pos % block_size) as u32,
            );
        }
        b.seqs.push(SeqInput {
            block_table: p.block_table.to_vec(),
            num_computed: p.num_computed,
            num_new: p.tokens.len(),
            needs_logits: p.needs_logits,
            pick: Default::default(),
        });
    }
    b
}

/// Deterministic pseudo-random numbers (xorshift), so tests need no extra crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    /// A random permutation of 0..n.
    pub fn perm(&mut self, n: usize) -> Vec<u32> {
        let mut v: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            v.swap(i, self.below(i + 1));
        }
        v
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
