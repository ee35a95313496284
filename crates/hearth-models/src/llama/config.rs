//! Llama hyper-parameters, read from GGUF `llama.*` metadata (Hugging Face
//! `config.json` is read by `crate::hf_config`).

use crate::gguf_meta::{get_f32, get_str, get_usize, req_f32, req_usize, Metadata};
use crate::{ModelError, ModelSpec};

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub num_layers: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_size: usize,
    pub vocab_size: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub max_context: usize,
    /// Rotate-half rope (Hugging Face layout) instead of interleaved pairs (GGUF).
    pub neox_rope: bool,
    /// Reported in `ModelSpec::architecture` ("llama", "qwen2", "qwen3").
    pub architecture: String,
}

impl LlamaConfig {
    /// `vocab_size` comes from the token embedding's shape, the rest from metadata.
    pub fn from_gguf(md: &Metadata, vocab_size: usize) -> Result<Self, ModelError> {
        Self::from_gguf_arch(md, vocab_size, "llama")
    }

    /// `arch`'s keys ("llama", "qwen2", "qwen3"); llama.cpp ropes llama in interleaved
    /// pairs and the Qwen architectures in halves (neox).
    pub fn from_gguf_arch(
        md: &Metadata,
        vocab_size: usize,
        arch: &str,
    ) -> Result<Self, ModelError> {
        let k = |s: &str| format!("{arch}.{s}");
        let hidden_size = req_usize(md, &k("embedding_length"))?;
        let num_heads = req_usize(md, &k("attention.head_count"))?;
        let num_kv_heads = get_usize(md, &k("attention.head_count_kv"))?.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(ModelError::Invalid(format!(
                "{num_heads} attention heads cannot share {num_kv_heads} KV heads"
            )));
        }
        let head_dim = match get_usize(md, &k("attention.key_length"))? {
            Some(d) => d,
            None => hidden_size / num_heads,
        };
        if let Some(vd) = get_usize(md, &k("attention.value_length"))? {
            if vd != head_dim {
                return Err(ModelError::Unsupported(format!(
                    "value length {vd} != key length {head_dim}"
                )));
            }
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(ModelError::Invalid(format!(
                "head dim {head_dim} must be even and non-zero"
            )));
        }
        if let Some(rd) = get_usize(md, &k("rope.dimension_count"))? {
            if rd != head_dim {
                return Err(ModelError::Unsupported(format!(
                    "partial rope ({rd} of {head_dim} dims)"
                )));
            }
        }
        match get_str(md, &k("rope.scaling.type"))? {
            None | Some("none") => {}
            Some(other) => return Err(ModelError::Unsupported(format!("rope scaling `{other}`"))),
        }
        Ok(LlamaConfig {
            num_layers: req_usize(md, &k("block_count"))?,
            hidden_size,
            num_heads,
            num_kv_heads,
            head_dim,
            ffn_size: req_usize(md, &k("feed_forward_length"))?,
            vocab_size,
            rope_theta: get_f32(md, &k("rope.freq_base"))?.unwrap_or(10_000.0),
            rms_eps: req_f32(md, &k("attention.layer_norm_rms_epsilon"))?,
            max_context: get_usize(md, &k("context_length"))?.unwrap_or(2048),
            neox_rope: arch != "llama",
            architecture: arch.into(),
        })
    }

    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            architecture: self.architecture.clone(),
            num_layers: self.num_layers,
            hidden_size: self.hidden_size,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
            vocab_size: self.vocab_size,
            max_context: self.max_context,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::Value;

    fn md(extra: &[(&str, Value)]) -> Metadata {
        let mut m: Metadata = [
            ("llama.block_count", Value::U32(2)),
            ("llama.embedding_length", Value::U32(576)),
            ("llama.attention.head_count", Value::U32(9)),
            ("llama.attention.head_count_kv", Value::U32(3)),
            ("llama.feed_forward_length", Value::U64(1536)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        m.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        m
    }

    #[test]
    fn reads_llama_keys_with_defaults() {
        let c = LlamaConfig::from_gguf(&md(&[]), 100).expect("config");
        assert_eq!((c.head_dim, c.ffn_size, c.vocab_size), (64, 1536, 100));
        assert_eq!((c.rope_theta, c.max_context), (10_000.0, 2048));
        let c = LlamaConfig::from_gguf(&md(&[("llama.rope.freq_base", Value::F32(1e5))]), 1)
            .expect("config");
        assert_eq!(c.rope_theta, 1e5);
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let bad = [
            ("llama.attention.head_count_kv", Value::U32(4)),
            ("llama.rope.dimension_count", Value::U32(32)),
            ("llama.rope.scaling.type", Value::String("yarn".into())),
            ("llama.block_count", Value::String("two".into())),
            ("llama.attention.head_count", Value::I32(-1)),
        ];
        for (k, v) in bad {
            assert!(
                LlamaConfig::from_gguf(&md(&[(k, v.clone())]), 1).is_err(),
                "{k} = {v:?} accepted"
            );
        }
        let mut m = md(&[]);
        m.remove("llama.attention.layer_norm_rms_epsilon");
        let e = LlamaConfig::from_gguf(&m, 1).expect_err("missing eps accepted");
        assert!(e.to_string().contains("layer_norm_rms_epsilon"), "{e}");
    }
}
