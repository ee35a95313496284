//! What the tests with a fake model (no weights) share: the tiny fixture tokenizer, a
//! small llama-shaped spec and the shape of a forward's answer.

use std::sync::Arc;

use hearth_models::{BatchInput, ModelSpec};

/// The byte-level BPE fixture of hearth-text.
pub fn tiny_tokenizer() -> Arc<hearth_text::Tokenizer> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hearth-text/tests/fixtures/hf_tiny"
    );
    Arc::new(hearth_text::Tokenizer::from_hf_dir(dir).expect("tokenizer"))
}

/// Two layers, 2 heads of 4 over one KV head, `vocab` tokens, 256 of context.
pub fn tiny_spec(vocab: usize) -> ModelSpec {
    ModelSpec {
        architecture: "llama".into(),
        num_layers: 2,
        hidden_size: 8,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 4,
        vocab_size: vocab,
        max_context: 256,
    }
}

/// A forward's answer: `row()` for each sequence that asks for logits, empty for the rest.
pub fn logits_where_needed(batch: &BatchInput, mut row: impl FnMut() -> Vec<f32>) -> Vec<Vec<f32>> {
    batch
        .seqs
        .iter()
        .map(|s| if s.needs_logits { row() } else { Vec::new() })
        .collect()
}
