//! Builds a Hugging Face `tokenizers::Tokenizer` for a GGUF `llama` (SentencePiece)
//! vocabulary the way transformers' GGUF loader does (`GGUFLlamaConverter`, legacy
//! mode): a BPE model over the tokens with merges derived from the scores and byte
//! fallback (`<0x0A>` tokens), the normalizer `Prepend("▁")` + `Replace(" ", "▁")`, and
//! the decoder ByteFallback, Fuse, `Replace("▁", " ")`, `Strip(" ", 1, 0)`.
//! CONTROL and UNKNOWN tokens are special added tokens, so `<start_of_turn>` in text
//! is one id. USER_DEFINED tokens are left to the BPE, as transformers does
//! (sentencepiece and llama.cpp match them in text instead).

use std::cmp::Ordering;
use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence};
use tokenizers::AddedToken;

use crate::error::{Result, TextError};
use crate::metadata::{opt_bool, opt_f32_array, opt_int_array, opt_u32, req_str_array, Metadata};

const TOKEN_TYPE_UNKNOWN: i64 = 2;
const TOKEN_TYPE_CONTROL: i64 = 3;
const SPACE: &str = "▁";

/// Scores as Python compares them: -0.0 equals 0.0 (`total_cmp` alone would not).
fn cmp_desc(a: f32, b: f32) -> Ordering {
    (b + 0.0).total_cmp(&(a + 0.0))
}

/// Merges from scores: every split of a token into two vocabulary tokens is a merge;
/// merges rank by the whole token's score, then (within one token) by the scores of
/// its parts, ties in vocabulary order. Same order as transformers' skeleton builds.
fn merges_from_scores(tokens: &[&str], score: &HashMap<&str, f32>) -> Merges {
    let mut seen = std::collections::HashSet::with_capacity(tokens.len());
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for &tok in tokens {
        if !seen.insert(tok) {
            continue;
        }
        let piece_score = score[tok];
        let mut local: Vec<(&str, &str, f32)> = tok
            .char_indices()
            .skip(1)
            .map(|(i, _)| tok.split_at(i))
            .filter(|(l, r)| score.contains_key(l) && score.contains_key(r))
            .map(|(l, r)| (l, r, piece_score))
            .collect();
        // Stable sorts, as Python's `sorted`: ties keep their order.
        local.sort_by(|a, b| {
            cmp_desc(score[a.0], score[b.0]).then(cmp_desc(score[a.1], score[b.1]))
        });
        merges.extend(local);
    }
    merges.sort_by(|a, b| cmp_desc(a.2, b.2));
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

fn check_len(key: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(TextError::InvalidMetadata {
        key: key.into(),
        reason: format!("{got} entries for {want} tokens"),
    })
}

/// Builds the tokenizer from a `llama`-model GGUF's metadata.
pub fn build(md: &Metadata) -> Result<tokenizers::Tokenizer> {
    let tokens = req_str_array(md, "tokenizer.ggml.tokens")?;
    let scores = opt_f32_array(md, "tokenizer.ggml.scores")?
        .ok_or_else(|| TextError::MissingMetadata("tokenizer.ggml.scores".into()))?;
    check_len("tokenizer.ggml.scores", scores.len(), tokens.len())?;
    let token_types = opt_int_array(md, "tokenizer.ggml.token_type")?;
    if let Some(tt) = &token_types {
        check_len("tokenizer.ggml.token_type", tt.len(), tokens.len())?;
    }

    // Later duplicates win, as in transformers' dicts.
    let mut vocab = Vocab::with_capacity(tokens.len());
    let mut score = HashMap::with_capacity(tokens.len());
    for (id, (tok, s)) in tokens.iter().zip(&scores).enumerate() {
        let id = u32::try_from(id)
            .map_err(|_| TextError::Tokenizer("vocabulary larger than u32".into()))?;
        vocab.insert(tok.to_string(), id);
        score.insert(*tok, *s);
    }
    let merges = merges_from_scores(&tokens, &score);

    let unk_id = opt_u32(md, "tokenizer.ggml.unknown_token_id")?;
    let unk = match unk_id {
        Some(id) => Some(
            tokens
                .get(id as usize)
                .ok_or_else(|| TextError::InvalidMetadata {
                    key: "tokenizer.ggml.unknown_token_id".into(),
                    reason: format!("id {id} is outside the vocabulary of {}", tokens.len()),
                })?,
        ),
        None => None,
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk.to_string());
    }
    let mut tokenizer = tokenizers::Tokenizer::new(builder.build()?);

    let add_prefix = opt_bool(md, "tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if add_prefix {
        norm.push(Prepend::new(SPACE.into()).into());
    }
    norm.push(Replace::new(" ", SPACE)?.into());
    tokenizer.with_normalizer(Some(Sequence::new(norm)))?;

    let mut dec: Vec<DecoderWrapper> = vec![
        ByteFallback::new().into(),
        Fuse::new().into(),
        Replace::new(SPACE, " ")?.into(),
    ];
    if add_prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(dec)));

    let names: Vec<String> = match &token_types {
        Some(tt) => tokens
            .iter()
            .zip(tt)
            .filter(|(_, ty)| matches!(**ty, TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN))
            .map(|(tok, _)| tok.to_string())
            .collect(),
        // No types: the unk / bos / eos tokens are the special ones.
        None => ["unknown", "bos", "eos"]
            .iter()
            .filter_map(|k| opt_u32(md, &format!("tokenizer.ggml.{k}_token_id")).transpose())
            .collect::<Result<Vec<u32>>>()?
            .into_iter()
            .filter_map(|id| tokens.get(id as usize).map(|t| t.to_string()))
            .collect(),
    };
    let special: Vec<AddedToken> = names
        .into_iter()
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    tokenizer.add_special_tokens(special)?;
    Ok(tokenizer)
}

#[cfg(test)]
#[path = "gguf_spm_tests.rs"]
mod tests;
