//! Hugging Face `config.json` of the Llama family (Llama 3.x, Qwen 2.5, Qwen3) read
//! into the shared decoder's `LlamaConfig` plus the per-architecture extras.

use crate::llama::LlamaConfig;
use crate::ModelError;
use serde_json::Value;

/// What `config.json` says beyond `LlamaConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    pub llama: LlamaConfig,
    /// Biases on q/k/v projections (Qwen2).
    pub qkv_bias: bool,
    /// Per-head RMSNorm of q and k before rope (Qwen3).
    pub qk_norm: bool,
    /// The LM head is the token embedding (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    /// llama3 rope scaling expressed as per-frequency divisors (`Rope::new`'s factors).
    pub rope_freq_factors: Option<Vec<f32>>,
}

fn usize_of(c: &Value, key: &str) -> Result<Option<usize>, ModelError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            ModelError::Invalid(format!("config.json `{key}` = {v} is not a count"))
        }),
    }
}

fn req_usize(c: &Value, key: &str) -> Result<usize, ModelError> {
    usize_of(c, key)?.ok_or_else(|| ModelError::Invalid(format!("config.json has no `{key}`")))
}

fn f64_of(c: &Value, key: &str) -> Result<Option<f64>, ModelError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            ModelError::Invalid(format!("config.json `{key}` = {v} is not a number"))
        }),
    }
}

fn bool_of(c: &Value, key: &str) -> bool {
    c.get(key).and_then(Value::as_bool).unwrap_or(false)
}

impl HfConfig {
    pub fn from_json(c: &Value) -> Result<Self, ModelError> {
        let arch = c
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::Invalid("config.json has no `architectures`".into()))?;
        let (name, qkv_bias, qk_norm) = match arch {
            "LlamaForCausalLM" => ("llama", false, false),
            "Qwen2ForCausalLM" => ("qwen2", true, false),
            "Qwen3ForCausalLM" => ("qwen3", false, true),
            other => return Err(ModelError::Unsupported(format!("architecture `{other}`"))),
        };
        // Switches the shared decoder does not implement.
        if let Some(act) = c.get("hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                return Err(ModelError::Unsupported(format!("hidden_act `{act}`")));
            }
        }
        for key in ["attention_bias", "mlp_bias", "use_sliding_window"] {
            if bool_of(c, key) {
                return Err(ModelError::Unsupported(format!(
                    "config.json `{key}` = true"
                )));
            }
        }
        let hidden_size = req_usize(c, "hidden_size")?;
        let num_heads = req_usize(c, "num_attention_heads")?;
        let num_kv_heads = usize_of(c, "num_key_value_heads")?.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(ModelError::Invalid(format!(
                "{num_heads} attention heads cannot share {num_kv_heads} KV heads"
            )));
        }
        let head_dim = usize_of(c, "head_dim")?.unwrap_or(hidden_size / num_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(ModelError::Invalid(format!(
                "head dim {head_dim} must be even and non-zero"
            )));
        }
        let rope_theta = f64_of(c, "rope_theta")?.unwrap_or(10_000.0);
        let llama = LlamaConfig {
            num_layers: req_usize(c, "num_hidden_layers")?,
            hidden_size,
            num_heads,
            num_kv_heads,
            head_dim,
            ffn_size: req_usize(c, "intermediate_size")?,
            vocab_size: req_usize(c, "vocab_size")?,
            rope_theta: rope_theta as f32,
            rms_eps: f64_of(c, "rms_norm_eps")?.unwrap_or(1e-6) as f32,
            max_context: usize_of(c, "max_position_embeddings")?.unwrap_or(2048),
            neox_rope: true,
            architecture: name.into(),
        };
        let rope_freq_factors = match c.get("rope_scaling") {
            None | Some(Value::Null) => None,
            Some(s) => llama3_factors(s, head_dim, rope_theta)?,
        };
        Ok(HfConfig {
            llama,
            qkv_bias,
            qk_norm,
            tie_word_embeddings: bool_of(c, "tie_word_embeddings"),
            rope_freq_factors,
        })
    }
}

/// transformers' llama3 rope: long wavelengths are slowed by `factor`, short ones kept,
/// the band between blended. Returned as divisors of each pair's frequency.
fn llama3_factors(s: &Value, head_dim: usize, theta: f64) -> Result<Option<Vec<f32>>, ModelError> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => return Ok(None),
        "llama3" => {}
        other => return Err(ModelError::Unsupported(format!("rope scaling `{other}`"))),
    }
    let num = |k: &str| {
        f64_of(s, k)?
            .ok_or_else(|| ModelError::Invalid(format!("llama3 rope scaling has no `{k}`")))
    };
    let (factor, low, high) = (
        num("factor")?,
        num("low_freq_factor")?,
        num("high_freq_factor")?,
    );
    let old_ctx = num("original_max_position_embeddings")?;
    if factor <= 0.0 || high <= low {
        return Err(ModelError::Invalid(format!("llama3 rope scaling {s}")));
    }
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    let factors = (0..head_dim / 2)
        .map(|i| {
            let f = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / f;
            let scaled = if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            };
            (f / scaled) as f32
        })
        .collect();
    Ok(Some(factors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
               "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 256, "rms_norm_eps": 1e-5})
    }

    #[test]
    fn reads_llama_with_defaults_and_llama3_scaling() {
        let c = HfConfig::from_json(&base()).expect("config");
        assert_eq!(
            (c.llama.head_dim, c.llama.rope_theta, c.llama.max_context),
            (16, 1e4, 2048)
        );
        assert!(c.llama.neox_rope && !c.qkv_bias && !c.qk_norm && !c.tie_word_embeddings);
        assert!(c.rope_freq_factors.is_none());
        let mut j = base();
        j["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
        let f = HfConfig::from_json(&j)
            .expect("config")
            .rope_freq_factors
            .expect("factors");
        // Wavelengths 2pi*10^(i/2): 6.3 kept, 19.9 and 62.8 blended, the rest / 8.
        assert_eq!(f[0], 1.0);
        assert!(f[1] > 1.0 && f[1] < f[2] && f[2] < 8.0, "{f:?}");
        assert!(f[3..].iter().all(|&x| (x - 8.0).abs() < 1e-5), "{f:?}");
    }

    #[test]
    fn rejects_what_the_decoder_cannot_run() {
        let bad = [
            ("architectures", json!(["GPT2LMHeadModel"])),
            ("num_key_value_heads", json!(3)),
            ("hidden_act", json!("gelu")),
            ("attention_bias", json!(true)),
            ("rope_scaling", json!({"rope_type": "yarn", "factor": 4.0})),
            ("hidden_size", json!("big")),
        ];
        for (k, v) in bad {
            let mut j = base();
            j[k] = v.clone();
            assert!(HfConfig::from_json(&j).is_err(), "{k} = {v} accepted");
        }
    }
}
