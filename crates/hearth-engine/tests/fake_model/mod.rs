//! What the tests with a fake model (no weights) share: the tiny fixture tokenizer and
//! a small llama-shaped spec.

use std::sync::Arc;

use hearth_models::ModelSpec;

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
