//! The pre-tokenizer (and normalizer) for a byte-level BPE vocabulary, chosen from
//! GGUF's `tokenizer.ggml.pre`.
//!
//! Each entry reproduces the `pre_tokenizer` of the model family's published
//! `tokenizer.json`, so ids match Hugging Face for the same text.

use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::error::Result;

/// Llama 3 (`llama-bpe`): numbers in groups of up to three digits.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2 / Qwen3: like Llama 3 but every digit alone.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// o200k (gpt-oss, `gpt-4o`): case-aware words, numbers in groups of up to three.
const O200K_REGEX: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// What a byte-level BPE tokenizer needs before the model runs.
pub struct PreTokenization {
    pub normalizer: Option<NormalizerWrapper>,
    pub pre_tokenizer: PreTokenizerWrapper,
    /// Use a whole pre-token found in the vocabulary as is (Llama 3's tokenizer.json).
    pub ignore_merges: bool,
}

/// GPT-2's own regex inside ByteLevel: the default for unknown `pre` values too.
fn gpt2_byte_level() -> PreTokenizerWrapper {
    ByteLevel::new(false, true, true).into()
}

/// A regex split, then byte-level mapping without ByteLevel's own regex.
fn regex_then_bytes(regex: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(regex.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )?;
    Ok(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, false, false).into(),
    ])
    .into())
}

/// Picks the pre-tokenization for `tokenizer.ggml.pre` (absent = "default").
pub fn for_pre(pre: Option<&str>) -> Result<PreTokenization> {
    let pre = pre.unwrap_or("default");
    let (normalizer, pre_tokenizer) = match pre {
        // SmolLM: each digit alone, then GPT-2's regex.
        "smollm" => {
            let seq = Sequence::new(vec![Digits::new(true).into(), gpt2_byte_level()]);
            (None, seq.into())
        }
        "llama-bpe" | "llama3" | "llama-v3" | "smaug-bpe" => {
            (None, regex_then_bytes(LLAMA3_REGEX)?)
        }
        "qwen2" | "deepseek-r1-qwen" => (Some(NFC.into()), regex_then_bytes(QWEN2_REGEX)?),
        "gpt-4o" | "o200k" => (None, regex_then_bytes(O200K_REGEX)?),
        "default" | "gpt2" | "gpt-2" => (None, gpt2_byte_level()),
        other => {
            tracing::warn!(
                pre = other,
                "unknown tokenizer.ggml.pre; using GPT-2 byte-level splitting"
            );
            (None, gpt2_byte_level())
        }
    };
    let ignore_merges = matches!(pre, "llama-bpe" | "llama3" | "llama-v3" | "smaug-bpe");
    Ok(PreTokenization {
        normalizer,
        pre_tokenizer,
        ignore_merges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn pieces(pre: &str, text: &str) -> Vec<String> {
        let p = for_pre(Some(pre)).expect("pre-tokenizer builds");
        let mut s = PreTokenizedString::from(text);
        p.pre_tokenizer.pre_tokenize(&mut s).expect("pre-tokenize");
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(t, _, _)| t.to_string())
            .collect()
    }

    #[test]
    fn smollm_splits_each_digit() {
        assert_eq!(pieces("smollm", "a 123"), vec!["a", "Ġ", "1", "2", "3"]);
    }

    #[test]
    fn llama3_groups_three_digits() {
        assert_eq!(pieces("llama-bpe", "12345 hi"), vec!["123", "45", "Ġhi"]);
    }

    #[test]
    fn qwen2_splits_each_digit_and_keeps_newlines() {
        assert_eq!(pieces("qwen2", "12 x\n\n"), vec!["1", "2", "Ġx", "ĊĊ"]);
    }

    #[test]
    fn o200k_builds_and_splits_case() {
        assert_eq!(
            pieces("gpt-4o", "HelloWorld 1234"),
            vec!["Hello", "World", "Ġ", "123", "4"]
        );
    }
}
