//! Builds a Hugging Face `tokenizers::Tokenizer` for a GGUF `gpt2` (byte-level BPE)
//! vocabulary: tokens + merges from the metadata, the pre-tokenizer its `pre` names,
//! a byte-level decoder, and the CONTROL / USER_DEFINED tokens as added tokens so
//! that `<|im_start|>` in text is one id.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::AddedToken;

use crate::error::{Result, TextError};
use crate::metadata::{opt_int_array, opt_str, req_str_array, Metadata};
use crate::pretokenizer;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub const TOKEN_TYPE_CONTROL: i64 = 3;
pub const TOKEN_TYPE_USER_DEFINED: i64 = 4;

fn parse_merges(raw: &[&str]) -> Result<Merges> {
    raw.iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| TextError::InvalidMetadata {
                    key: "tokenizer.ggml.merges".into(),
                    reason: format!("merge {m:?} is not two tokens separated by a space"),
                })
        })
        .collect()
}

/// Builds the tokenizer from a `gpt2`-model GGUF's metadata.
pub fn build(md: &Metadata) -> Result<tokenizers::Tokenizer> {
    let tokens = req_str_array(md, "tokenizer.ggml.tokens")?;
    let merges = parse_merges(&req_str_array(md, "tokenizer.ggml.merges")?)?;
    let token_types =
        opt_int_array(md, "tokenizer.ggml.token_type")?.unwrap_or_else(|| vec![1; tokens.len()]);
    if token_types.len() != tokens.len() {
        return Err(TextError::InvalidMetadata {
            key: "tokenizer.ggml.token_type".into(),
            reason: format!("{} types for {} tokens", token_types.len(), tokens.len()),
        });
    }

    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, tok) in tokens.iter().enumerate() {
        let id = u32::try_from(id)
            .map_err(|_| TextError::Tokenizer("vocabulary larger than u32".into()))?;
        // First id wins if a GGUF repeats a token string, as llama.cpp's map does.
        vocab.entry(tok.to_string()).or_insert(id);
    }

    let pre = pretokenizer::for_pre(opt_str(md, "tokenizer.ggml.pre")?)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()?;

    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_normalizer(pre.normalizer)?;
    tokenizer.with_pre_tokenizer(Some(pre.pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // CONTROL tokens are special (matched in text, skipped by skip_special decode);
    // USER_DEFINED ones are matched in text as one id but decode as text.
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (tok, ty) in tokens.iter().zip(&token_types) {
        match *ty {
            TOKEN_TYPE_CONTROL => {
                special.push(AddedToken::from(tok.to_string(), true).normalized(false))
            }
            TOKEN_TYPE_USER_DEFINED => {
                user.push(AddedToken::from(tok.to_string(), false).normalized(false))
            }
            _ => {}
        }
    }
    tokenizer.add_special_tokens(special)?;
    tokenizer.add_tokens(user)?;
    Ok(tokenizer)
}
