//! `Tokenizer`: text to ids and back, built from GGUF metadata.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::error::{Result, TextError};
use crate::metadata::{opt_bool, opt_u32, req_str};
use crate::{gguf_bpe, gguf_spm};

/// Tokens that end a turn in the common chat formats; added to `eos_ids` when the
/// vocabulary has them, so generation stops on them even if the GGUF's eos is another.
const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
];

/// A tokenizer plus the special ids the engine and templates need.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eos_ids: Vec<u32>,
    pad_id: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*` keys).
    pub fn from_gguf_metadata(md: &HashMap<String, gguf_file::Value>) -> Result<Tokenizer> {
        let model = req_str(md, "tokenizer.ggml.model")?;
        let inner = match model {
            "gpt2" => gguf_bpe::build(md)?,
            "llama" => gguf_spm::build(md)?,
            other => {
                return Err(TextError::Unsupported(format!(
                    "GGUF tokenizer model {other:?}"
                )))
            }
        };
        let vocab_size = inner.get_vocab_size(true) as u32;
        let check = |key: &str| -> Result<Option<u32>> {
            match opt_u32(md, key)? {
                Some(id) if id >= vocab_size => Err(TextError::InvalidMetadata {
                    key: key.to_string(),
                    reason: format!("id {id} is outside the vocabulary of {vocab_size}"),
                }),
                other => Ok(other),
            }
        };
        let bos_id = check("tokenizer.ggml.bos_token_id")?;
        let eos_id = check("tokenizer.ggml.eos_token_id")?;
        let pad_id = check("tokenizer.ggml.padding_token_id")?;

        let mut eos_ids: Vec<u32> = eos_id.into_iter().collect();
        let extra = [
            check("tokenizer.ggml.eot_token_id")?,
            check("tokenizer.ggml.eom_token_id")?,
        ];
        let named = END_OF_TURN_TOKENS
            .iter()
            .filter_map(|t| inner.token_to_id(t));
        for id in extra.into_iter().flatten().chain(named) {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }

        Ok(Tokenizer {
            inner,
            bos_id,
            eos_id,
            eos_ids,
            pad_id,
            // SentencePiece models add BOS unless told not to (llama.cpp and transformers).
            add_bos: opt_bool(md, "tokenizer.ggml.add_bos_token")?.unwrap_or(model == "llama"),
            add_eos: opt_bool(md, "tokenizer.ggml.add_eos_token")?.unwrap_or(false),
        })
    }

    /// Assembles a tokenizer from its parts (the Hugging Face folder loader uses it).
    pub(crate) fn from_parts(
        inner: tokenizers::Tokenizer,
        bos_id: Option<u32>,
        eos_ids: Vec<u32>,
        pad_id: Option<u32>,
        add_bos: bool,
        add_eos: bool,
    ) -> Tokenizer {
        Tokenizer {
            inner,
            bos_id,
            eos_id: eos_ids.first().copied(),
            eos_ids,
            pad_id,
            add_bos,
            add_eos,
        }
    }

    /// Reads a GGUF file's metadata (not its tensors) and builds its tokenizer.
    pub fn from_gguf_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let md = crate::metadata::read_gguf_metadata(path.as_ref())?;
        Tokenizer::from_gguf_metadata(&md)
    }

    /// Text to ids. Special tokens written in the text (`<|im_start|>`) always map to
    /// their ids; `add_special_tokens` adds BOS/EOS where the model asks for them.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false)?;
        let mut ids = Vec::with_capacity(enc.get_ids().len() + 2);
        if add_special_tokens && self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(enc.get_ids());
        if add_special_tokens && self.add_eos {
            ids.extend(self.eos_id);
        }
        Ok(ids)
    }

    /// Ids to text; `skip_special` drops CONTROL tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        Ok(self.inner.decode(ids, skip_special)?)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The model's own EOS id (the first of `eos_ids`).
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Every id that ends a turn: EOS, then end-of-turn tokens the vocabulary has.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// Whether `encode(_, true)` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token's vocabulary string (byte-level form, e.g. `Ġhello`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The underlying HF tokenizer (for constrained decoding, which needs the vocabulary).
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

#[cfg(test)]
#[path = "gguf_tokenizer_tests.rs"]
mod tests;
