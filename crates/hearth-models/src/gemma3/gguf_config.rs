//! `Gemma3Config` from llama.cpp's `gemma3.*` GGUF keys, and back.
//!
//! What llama.cpp assumes when a key is absent (src/models/gemma3.cpp): local rope
//! base 10000, every 6th layer global (`attention.sliding_window_pattern` may be a
//! count or a per-layer bool array), no sliding window when `attention.sliding_window`
//! is absent, and an attention scale of `head_dim ^ -0.5` (`(hidden / heads) ^ -0.5`
//! for the 62-layer 27B). llama.cpp has no key for `query_pre_attn_scalar`: hearth
//! writes `gemma3.attention.query_pre_attn_scalar` when the model's differs from that
//! rule (llama.cpp ignores it), and reads it when present.

use super::Gemma3Config;
use crate::gguf_meta::{get_f32, get_str, get_usize, req_f32, req_usize, Metadata};
use crate::ModelError;
use candle_core::quantized::gguf_file::Value;

const A: &str = "gemma3";

fn key(k: &str) -> String {
    format!("{A}.{k}")
}

/// llama.cpp's attention scale rule, as a `query_pre_attn_scalar`.
fn llama_cpp_scalar(layers: usize, hidden: usize, heads: usize, head_dim: usize) -> f32 {
    if layers == 62 {
        (hidden / heads.max(1)) as f32
    } else {
        head_dim as f32
    }
}

fn pattern(md: &Metadata, n: usize) -> Result<Vec<bool>, ModelError> {
    let k = key("attention.sliding_window_pattern");
    if let Some(Value::Array(a)) = md.get(&k) {
        if a.len() != n {
            return Err(ModelError::Invalid(format!(
                "`{k}` has {} entries for {n} layers",
                a.len()
            )));
        }
        return a
            .iter()
            .map(|v| match v {
                Value::Bool(b) => Ok(*b),
                other => Err(ModelError::Invalid(format!("`{k}` holds {other:?}"))),
            })
            .collect();
    }
    // llama.cpp's set_swa_pattern: layer i slides iff i % p < p - 1.
    let p = get_usize(md, &k)?.unwrap_or(6);
    if p == 0 {
        return Err(ModelError::Invalid(format!("`{k}` = 0")));
    }
    Ok((0..n).map(|i| i % p < p - 1).collect())
}

impl Gemma3Config {
    /// `vocab` is the row count of `token_embd.weight`.
    pub fn from_gguf(md: &Metadata, vocab: usize) -> Result<Self, ModelError> {
        let num_layers = req_usize(md, &key("block_count"))?;
        let hidden_size = req_usize(md, &key("embedding_length"))?;
        let num_heads = req_usize(md, &key("attention.head_count"))?;
        let num_kv_heads = get_usize(md, &key("attention.head_count_kv"))?.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(ModelError::Invalid(format!(
                "{num_heads} attention heads cannot share {num_kv_heads} KV heads"
            )));
        }
        let head_dim = get_usize(md, &key("attention.key_length"))?.unwrap_or(256);
        let v_dim = get_usize(md, &key("attention.value_length"))?.unwrap_or(head_dim);
        if head_dim == 0 || head_dim % 2 != 0 || v_dim != head_dim {
            return Err(ModelError::Unsupported(format!(
                "key length {head_dim}, value length {v_dim}"
            )));
        }
        let window = get_usize(md, &key("attention.sliding_window"))?.filter(|&w| w > 0);
        let (sliding_window, sliding) = match window {
            Some(w) => (w, pattern(md, num_layers)?),
            None => (1, vec![false; num_layers]),
        };
        let rope_linear_factor = match get_str(md, &key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => match get_f32(md, &key("rope.scaling.factor"))? {
                Some(f) if f > 0.0 => f,
                f => return Err(ModelError::Invalid(format!("linear rope factor {f:?}"))),
            },
            Some(other) => return Err(ModelError::Unsupported(format!("rope scaling `{other}`"))),
        };
        let scalar = get_f32(md, &key("attention.query_pre_attn_scalar"))?;
        Ok(Gemma3Config {
            num_layers,
            hidden_size,
            num_heads,
            num_kv_heads,
            head_dim,
            ffn_size: req_usize(md, &key("feed_forward_length"))?,
            vocab_size: vocab,
            rms_eps: req_f32(md, &key("attention.layer_norm_rms_epsilon"))?,
            max_context: get_usize(md, &key("context_length"))?.unwrap_or(131_072),
            query_pre_attn_scalar: scalar
                .unwrap_or_else(|| llama_cpp_scalar(num_layers, hidden_size, num_heads, head_dim)),
            sliding_window,
            sliding,
            rope_theta: get_f32(md, &key("rope.freq_base"))?.unwrap_or(1_000_000.0),
            rope_linear_factor,
            rope_local_theta: get_f32(md, &key("rope.freq_base_swa"))?.unwrap_or(10_000.0),
            final_softcap: get_f32(md, &key("final_logit_softcapping"))?.filter(|&c| c > 0.0),
            attn_softcap: None,
            tie_word_embeddings: true,
        })
    }

    /// The `gemma3.*` keys llama.cpp's converter writes, plus the ones hearth needs
    /// where llama.cpp's defaults would differ (see the module doc).
    pub fn gguf_metadata(&self) -> Result<Vec<(String, Value)>, ModelError> {
        if self.attn_softcap.is_some() {
            return Err(ModelError::Unsupported(
                "attn_logit_softcapping has no GGUF key (llama.cpp rejects it)".into(),
            ));
        }
        let u = |n: usize| Value::U32(n as u32);
        let mut md = vec![
            ("context_length", u(self.max_context)),
            ("embedding_length", u(self.hidden_size)),
            ("block_count", u(self.num_layers)),
            ("feed_forward_length", u(self.ffn_size)),
            ("attention.head_count", u(self.num_heads)),
            ("attention.head_count_kv", u(self.num_kv_heads)),
            ("attention.key_length", u(self.head_dim)),
            ("attention.value_length", u(self.head_dim)),
            ("attention.layer_norm_rms_epsilon", Value::F32(self.rms_eps)),
            ("rope.freq_base", Value::F32(self.rope_theta)),
            ("vocab_size", u(self.vocab_size)),
        ];
        if self.sliding.iter().any(|&s| s) {
            md.push(("attention.sliding_window", u(self.sliding_window)));
            let n = self.num_layers;
            if self.sliding != (0..n).map(|i| i % 6 < 5).collect::<Vec<_>>() {
                let a = self.sliding.iter().map(|&s| Value::Bool(s)).collect();
                md.push(("attention.sliding_window_pattern", Value::Array(a)));
            }
        }
        if self.rope_local_theta != 10_000.0 {
            md.push(("rope.freq_base_swa", Value::F32(self.rope_local_theta)));
        }
        if self.rope_linear_factor != 1.0 {
            md.push(("rope.scaling.type", Value::String("linear".into())));
            md.push(("rope.scaling.factor", Value::F32(self.rope_linear_factor)));
        }
        if let Some(c) = self.final_softcap {
            md.push(("final_logit_softcapping", Value::F32(c)));
        }
        let (l, h, nh, hd) = (
            self.num_layers,
            self.hidden_size,
            self.num_heads,
            self.head_dim,
        );
        if self.query_pre_attn_scalar != llama_cpp_scalar(l, h, nh, hd) {
            let v = Value::F32(self.query_pre_attn_scalar);
            md.push(("attention.query_pre_attn_scalar", v));
        }
        Ok(md.into_iter().map(|(k, v)| (key(k), v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn md_of(c: &Gemma3Config) -> Metadata {
        c.gguf_metadata().expect("metadata").into_iter().collect()
    }

    #[test]
    fn round_trips_through_gguf_keys() {
        let j = json!({"architectures": ["Gemma3ForCausalLM"], "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 256, "head_dim": 32,
            "query_pre_attn_scalar": 24, "sliding_window_pattern": 2, "sliding_window": 8,
            "rope_local_base_freq": 5000.0, "final_logit_softcapping": 30.0,
            "rope_scaling": {"rope_type": "linear", "factor": 4.0}});
        let c = Gemma3Config::from_json(&j).expect("config");
        assert_eq!(Gemma3Config::from_gguf(&md_of(&c), 256).expect("gguf"), c);
        let mut soft = c.clone();
        soft.attn_softcap = Some(50.0);
        assert!(soft.gguf_metadata().is_err());
    }

    #[test]
    fn llama_cpp_defaults_when_keys_are_absent() {
        // Real Gemma 3 1B as llama.cpp writes it: 26 layers, pattern 6, scalar = head_dim.
        let j = json!({"architectures": ["Gemma3ForCausalLM"], "hidden_size": 1152,
            "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4,
            "num_key_value_heads": 1, "vocab_size": 262144, "head_dim": 256,
            "sliding_window": 512});
        let c = Gemma3Config::from_json(&j).expect("config");
        let md = md_of(&c);
        for k in ["sliding_window_pattern", "query_pre_attn_scalar"] {
            assert!(
                !md.contains_key(&format!("gemma3.attention.{k}")),
                "{k} written"
            );
        }
        assert_eq!(Gemma3Config::from_gguf(&md, 262144).expect("gguf"), c);
        // Without a sliding window llama.cpp runs every layer global.
        let mut md = md;
        md.remove("gemma3.attention.sliding_window");
        let g = Gemma3Config::from_gguf(&md, 262144).expect("gguf");
        assert!(g.sliding.iter().all(|s| !s));
    }
}
