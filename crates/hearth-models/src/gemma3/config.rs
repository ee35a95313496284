//! Gemma 3 text `config.json` (`Gemma3ForCausalLM`, model_type `gemma3_text`), or the
//! `text_config` of a `Gemma3ForConditionalGeneration` (4B and larger; text part only).
//! Missing keys take transformers' `Gemma3TextConfig` defaults, which the multimodal
//! checkpoints rely on (their `text_config` omits heads, vocab, ...).

use crate::{ModelError, ModelSpec};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Gemma3Config {
    pub num_layers: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_size: usize,
    pub vocab_size: usize,
    pub rms_eps: f32,
    pub max_context: usize,
    /// Attention scale is `query_pre_attn_scalar ^ -0.5` (not `head_dim ^ -0.5`).
    pub query_pre_attn_scalar: f32,
    pub sliding_window: usize,
    /// Per layer: true for sliding-window (local) attention, false for global.
    pub sliding: Vec<bool>,
    /// Rope base of global layers, and its linear scaling factor (1 when unscaled).
    pub rope_theta: f32,
    pub rope_linear_factor: f32,
    /// Rope base of local layers.
    pub rope_local_theta: f32,
    pub final_softcap: Option<f32>,
    pub attn_softcap: Option<f32>,
    pub tie_word_embeddings: bool,
}

fn num(c: &Value, key: &str) -> Result<Option<f64>, ModelError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            ModelError::Invalid(format!("config.json `{key}` = {v} is not a number"))
        }),
    }
}

fn count(c: &Value, key: &str) -> Result<Option<usize>, ModelError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            ModelError::Invalid(format!("config.json `{key}` = {v} is not a count"))
        }),
    }
}

fn or(c: &Value, key: &str, default: usize) -> Result<usize, ModelError> {
    Ok(count(c, key)?.unwrap_or(default))
}

fn arch(c: &Value) -> Option<&str> {
    c.get("architectures")?.get(0)?.as_str()
}

/// `config.json` names a Gemma 3 model this module runs (text only).
pub fn is_gemma3(c: &Value) -> bool {
    matches!(
        arch(c),
        Some("Gemma3ForCausalLM" | "Gemma3ForConditionalGeneration")
    )
}

impl Gemma3Config {
    pub fn from_json(top: &Value) -> Result<Self, ModelError> {
        let c = match arch(top) {
            Some("Gemma3ForConditionalGeneration") => top.get("text_config").ok_or_else(|| {
                ModelError::Invalid("Gemma3ForConditionalGeneration without text_config".into())
            })?,
            _ => top,
        };
        let act = c.get("hidden_activation").and_then(Value::as_str);
        if !matches!(act, None | Some("gelu_pytorch_tanh")) {
            return Err(ModelError::Unsupported(format!(
                "hidden_activation {act:?}"
            )));
        }
        if c.get("attention_bias").and_then(Value::as_bool) == Some(true) {
            return Err(ModelError::Unsupported("attention_bias = true".into()));
        }
        let num_layers = or(c, "num_hidden_layers", 26)?;
        let num_heads = or(c, "num_attention_heads", 8)?;
        let num_kv_heads = or(c, "num_key_value_heads", 4)?;
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(ModelError::Invalid(format!(
                "{num_heads} attention heads cannot share {num_kv_heads} KV heads"
            )));
        }
        let head_dim = count(c, "head_dim")?.unwrap_or(256);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(ModelError::Invalid(format!(
                "head dim {head_dim} must be even"
            )));
        }
        let sliding_window = count(c, "sliding_window")?.unwrap_or(4096);
        if sliding_window == 0 {
            return Err(ModelError::Invalid("sliding_window = 0".into()));
        }
        let sliding = layer_kinds(c, num_layers)?;
        let rope_linear_factor = match c.get("rope_scaling") {
            None | Some(Value::Null) => 1.0,
            Some(s) => {
                let kind = s.get("rope_type").or_else(|| s.get("type"));
                match kind.and_then(Value::as_str).unwrap_or("default") {
                    "default" => 1.0,
                    "linear" => match num(s, "factor")? {
                        Some(f) if f > 0.0 => f as f32,
                        _ => return Err(ModelError::Invalid(format!("rope scaling {s}"))),
                    },
                    other => {
                        return Err(ModelError::Unsupported(format!("rope scaling `{other}`")))
                    }
                }
            }
        };
        let cap = |k: &str| -> Result<Option<f32>, ModelError> {
            Ok(num(c, k)?.filter(|&v| v > 0.0).map(|v| v as f32))
        };
        Ok(Gemma3Config {
            num_layers,
            hidden_size: or(c, "hidden_size", 2304)?,
            num_heads,
            num_kv_heads,
            head_dim,
            ffn_size: or(c, "intermediate_size", 9216)?,
            vocab_size: or(c, "vocab_size", 262_208)?,
            rms_eps: num(c, "rms_norm_eps")?.unwrap_or(1e-6) as f32,
            max_context: count(c, "max_position_embeddings")?.unwrap_or(131_072),
            query_pre_attn_scalar: num(c, "query_pre_attn_scalar")?.unwrap_or(256.0) as f32,
            sliding_window,
            sliding,
            rope_theta: num(c, "rope_theta")?.unwrap_or(1_000_000.0) as f32,
            rope_linear_factor,
            rope_local_theta: num(c, "rope_local_base_freq")?.unwrap_or(10_000.0) as f32,
            final_softcap: cap("final_logit_softcapping")?,
            attn_softcap: cap("attn_logit_softcapping")?,
            tie_word_embeddings: c
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        })
    }

    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            architecture: "gemma3".into(),
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

/// `layer_types` (newer transformers) when present, else every `sliding_window_pattern`-th
/// layer is global (transformers 4.51: layer `i` slides iff `(i + 1) % pattern != 0`).
fn layer_kinds(c: &Value, n: usize) -> Result<Vec<bool>, ModelError> {
    if let Some(types) = c.get("layer_types").and_then(Value::as_array) {
        if types.len() != n {
            return Err(ModelError::Invalid(format!(
                "layer_types has {} entries for {n} layers",
                types.len()
            )));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(ModelError::Unsupported(format!("layer type {t}"))),
            })
            .collect();
    }
    let pattern = count(c, "sliding_window_pattern")?.unwrap_or(6);
    if pattern == 0 {
        return Err(ModelError::Invalid("sliding_window_pattern = 0".into()));
    }
    Ok((0..n).map(|i| (i + 1) % pattern != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"architectures": ["Gemma3ForCausalLM"], "hidden_size": 64,
               "intermediate_size": 128, "num_hidden_layers": 6, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 256, "head_dim": 32})
    }

    #[test]
    fn defaults_pattern_and_layer_types() {
        let c = Gemma3Config::from_json(&base()).expect("config");
        assert!(is_gemma3(&base()));
        assert_eq!(c.sliding, [true, true, true, true, true, false]);
        assert_eq!((c.query_pre_attn_scalar, c.sliding_window), (256.0, 4096));
        assert_eq!(
            (c.final_softcap, c.attn_softcap, c.rope_linear_factor),
            (None, None, 1.0)
        );
        let mut j = base();
        j["num_hidden_layers"] = json!(2);
        j["layer_types"] = json!(["full_attention", "sliding_attention"]);
        j["rope_scaling"] = json!({"rope_type": "linear", "factor": 8.0});
        j["final_logit_softcapping"] = json!(30.0);
        let c = Gemma3Config::from_json(&j).expect("config");
        assert_eq!(c.sliding, [false, true]);
        assert_eq!((c.rope_linear_factor, c.final_softcap), (8.0, Some(30.0)));
    }

    #[test]
    fn multimodal_text_config_with_defaults() {
        let j = json!({"architectures": ["Gemma3ForConditionalGeneration"],
            "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
                "num_hidden_layers": 34, "sliding_window": 1024,
                "rope_scaling": {"factor": 8.0, "rope_type": "linear"}}});
        assert!(is_gemma3(&j));
        let c = Gemma3Config::from_json(&j).expect("config");
        assert_eq!(
            (c.hidden_size, c.num_layers, c.sliding_window),
            (2560, 34, 1024)
        );
        assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim), (8, 4, 256));
        assert_eq!((c.vocab_size, c.rope_linear_factor), (262_208, 8.0));
        assert_eq!(c.sliding.iter().filter(|s| !**s).count(), 5); // layers 5, 11, .., 29
        let bare = json!({"architectures": ["Gemma3ForConditionalGeneration"]});
        assert!(Gemma3Config::from_json(&bare).is_err());
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        for (k, v) in [
            ("hidden_activation", json!("silu")),
            ("rope_scaling", json!({"rope_type": "yarn", "factor": 2.0})),
            ("sliding_window", json!(0)),
            ("layer_types", json!(["full_attention"])),
            ("num_key_value_heads", json!(3)),
        ] {
            let mut j = base();
            j[k] = v.clone();
            assert!(Gemma3Config::from_json(&j).is_err(), "{k} = {v} accepted");
        }
    }
}
