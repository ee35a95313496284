//! A SentencePiece-style `tokenizer.json` (BPE with byte fallback: Gemma, Llama 2,
//! Mistral) as llama.cpp's `llama` tokenizer model wants it: a score per token and
//! byte/unknown token types. The folder has no `tokenizer.model`, so the scores come
//! from the merges: SentencePiece's BPE merges the adjacent pair whose joined piece
//! scores highest, and Hugging Face's converter lists merges in that order, so a piece
//! made by the merge of rank `r` (from 0) scores `-(r + 1)` and the order comes back.

use serde_json::Value as Json;
use std::collections::HashMap;

/// llama.cpp token types this module sets.
pub(crate) const UNKNOWN: i32 = 2;
pub(crate) const BYTE: i32 = 6;

/// Whether `model` is a SentencePiece-style BPE (byte fallback) rather than byte-level.
pub(crate) fn is_sentencepiece(model: &Json) -> bool {
    model.get("byte_fallback").and_then(Json::as_bool) == Some(true)
}

/// `<0x0A>`-style byte tokens.
fn is_byte_token(t: &str) -> bool {
    t.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && t[3..5].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Scores for `texts` (by id) from `merges` ("left right", best first). A piece no merge
/// makes scores 0 when it is one character (only ever a merge's part) and below every
/// merge otherwise, so it is never preferred to a listed merge.
pub(crate) fn scores(texts: &[String], merges: &[String]) -> Vec<f32> {
    let mut rank: HashMap<String, usize> = HashMap::with_capacity(merges.len());
    for (r, m) in merges.iter().enumerate() {
        if let Some((l, r_)) = m.split_once(' ') {
            rank.entry(format!("{l}{r_}")).or_insert(r);
        }
    }
    let unmade = -(merges.len() as f32) - 1.0;
    texts
        .iter()
        .map(|t| match rank.get(t) {
            Some(&r) => -(r as f32) - 1.0,
            None if t.chars().count() <= 1 || is_byte_token(t) => 0.0,
            None => unmade,
        })
        .collect()
}

/// Byte tokens typed BYTE and the unknown token UNKNOWN, others left as they are.
pub(crate) fn retype(texts: &[String], types: &mut [i32], unk: Option<&str>) {
    for (t, ty) in texts.iter().zip(types.iter_mut()) {
        if is_byte_token(t) {
            *ty = BYTE;
        } else if Some(t.as_str()) == unk {
            *ty = UNKNOWN;
        }
    }
}

/// Whether the tokenizer puts "▁" before the text (llama.cpp's `add_space_prefix`): a
/// `Prepend("▁")` normalizer, or a Metaspace pre-tokenizer that prepends.
pub(crate) fn adds_space_prefix(tok: &Json) -> bool {
    fn walk(v: &Json, f: &dyn Fn(&Json) -> bool) -> bool {
        f(v) || match v {
            Json::Array(a) => a.iter().any(|x| walk(x, f)),
            Json::Object(o) => o.values().any(|x| walk(x, f)),
            _ => false,
        }
    }
    let prepends = |v: &Json| {
        let ty = v.get("type").and_then(Json::as_str);
        match ty {
            Some("Prepend") => v.get("prepend").and_then(Json::as_str) == Some("▁"),
            Some("Metaspace") => {
                let scheme = v.get("prepend_scheme").and_then(Json::as_str);
                let legacy = v.get("add_prefix_space").and_then(Json::as_bool);
                matches!(scheme, Some("always") | Some("first"))
                    || (scheme.is_none() && legacy == Some(true))
            }
            _ => false,
        }
    };
    [tok.get("normalizer"), tok.get("pre_tokenizer")]
        .into_iter()
        .flatten()
        .any(|v| walk(v, &prepends))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merge_ranks_become_descending_scores() {
        let texts = strs(&["<unk>", "<0x0A>", "a", "b", "ab", "abb", "zz"]);
        let merges = strs(&["a b", "ab b", "a bb"]);
        let s = scores(&texts, &merges);
        // "ab" by rank 0, "abb" by rank 1 (its first merge); "<unk>" and "zz" no merge
        // makes: below every merge. Single characters and bytes: 0.
        assert_eq!(s, [-4.0, 0.0, 0.0, 0.0, -1.0, -2.0, -4.0]);
        let mut types = vec![1; texts.len()];
        retype(&texts, &mut types, Some("<unk>"));
        assert_eq!(types, [UNKNOWN, BYTE, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn space_prefix_from_normalizer_or_metaspace() {
        let prepend = json!({"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace"}]}});
        assert!(adds_space_prefix(&prepend));
        let gemma = json!({"normalizer": {"type": "Replace", "pattern": {"String": " "},
            "content": "▁"}, "pre_tokenizer": null});
        assert!(!adds_space_prefix(&gemma));
        let meta = json!({"pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first"}});
        assert!(adds_space_prefix(&meta));
        let never = json!({"pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "never"}});
        assert!(!adds_space_prefix(&never));
        assert!(is_sentencepiece(
            &json!({"type": "BPE", "byte_fallback": true})
        ));
        assert!(!is_sentencepiece(&json!({"type": "BPE"})));
    }
}
