//! The model's vocabulary as llguidance sees it: the bytes of every token, in a trie.

use std::sync::Arc;

use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::error::{Result, TextError};
use crate::gguf_tokenizer::Tokenizer;

/// Token bytes in a trie; EOS ids are every id that ends a turn.
struct VocabEnv {
    trie: TokTrie,
}

impl TokenizerEnv for VocabEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Only used to force tokens, which hearth never asks for; the greedy trie split
    /// is enough (and `tokenize_is_canonical` tells llguidance not to rely on it).
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.greedy_tokenize(s)
    }

    fn tokenize_is_canonical(&self) -> bool {
        false
    }
}

/// Builds the llguidance token environment of `tok`.
pub(crate) fn tok_env(tok: &Tokenizer) -> Result<TokEnv> {
    let hf_json = tok
        .hf()
        .to_string(false)
        .map_err(|e| TextError::Tokenizer(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&hf_json).map_err(|e| TextError::Tokenizer(e.to_string()))?;
    // Special tokens come back as 0xFF + name, so grammars can only name them on purpose.
    let mut words = llguidance::token_bytes_from_tokenizer_json(&value)
        .map_err(|e| TextError::Unsupported(format!("vocabulary for constraints: {e}")))?;
    let vocab_size = tok.vocab_size().max(words.len());
    words.resize(vocab_size, Vec::new());
    let eos = tok.eos_ids();
    let Some(&first_eos) = eos.first() else {
        return Err(TextError::Unsupported(
            "constraints need an end-of-sequence token".into(),
        ));
    };
    if let Some(bad) = eos.iter().find(|&&id| id as usize >= vocab_size) {
        return Err(TextError::Tokenizer(format!(
            "EOS id {bad} is outside the vocabulary"
        )));
    }
    let info = TokRxInfo::new(vocab_size as u32, first_eos);
    let trie = TokTrie::from(&info, &words).with_eos_tokens(eos);
    Ok(Arc::new(VocabEnv { trie }))
}
