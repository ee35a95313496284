//! Builds the shared Llama-family decoder from a Hugging Face folder (`config.json` +
//! safetensors): Llama 3.x, Qwen 2.5, Qwen3. Weights are kept dense in f32.

use crate::attention::CpuPagedAttention;
use crate::hf_config::HfConfig;
use crate::llama::{Layer, Llama, Rope};
use crate::quantize::linear_from_f32;
use crate::safetensors::SafetensorsDir;
use crate::{CausalLm, ModelError, ModelSpec};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::path::Path;

/// A model ready to run, plus its parsed `config.json` (token ids for hearth-text).
pub struct LoadedModel {
    pub model: Box<dyn CausalLm>,
    pub spec: ModelSpec,
    pub config: serde_json::Value,
}

/// Loads a Hugging Face model folder on the CPU (compute in f32).
pub fn load_safetensors_dir(dir: &Path) -> Result<LoadedModel, ModelError> {
    load_safetensors_dir_with(dir, None)
}

/// Like `load_safetensors_dir`; with `quantization`, each matrix is quantized right
/// after it is read from the map, so the whole model is never held in f32.
pub fn load_safetensors_dir_with(
    dir: &Path,
    quantization: Option<GgmlDType>,
) -> Result<LoadedModel, ModelError> {
    let config = read_config(dir)?;
    if crate::gemma3::is_gemma3(&config) {
        let cfg = crate::gemma3::Gemma3Config::from_json(&config)?;
        let st = SafetensorsDir::open(dir)?;
        let model = crate::gemma3::load(&cfg, &st, &Device::Cpu, quantization)?;
        return Ok(LoadedModel {
            model: Box::new(model),
            spec: cfg.spec(),
            config,
        });
    }
    let hf = HfConfig::from_json(&config)?;
    let st = SafetensorsDir::open(dir)?;
    let llama = build(&hf, &st, &Device::Cpu, quantization)?;
    let spec = hf.llama.spec();
    Ok(LoadedModel {
        model: Box::new(llama),
        spec,
        config,
    })
}

/// A llama-family Hugging Face folder (Llama, Qwen2, Qwen3) as a CPU llama with dense
/// f32 matrices: what the CUDA backend uploads. Gemma 3 folders are refused.
pub fn load_llama_dir(dir: &Path) -> Result<Llama, ModelError> {
    load_llama_dir_with(dir, None)
}

/// `load_llama_dir`, each matrix quantized to `quantization` where given.
pub fn load_llama_dir_with(
    dir: &Path,
    quantization: Option<GgmlDType>,
) -> Result<Llama, ModelError> {
    let config = read_config(dir)?;
    if crate::gemma3::is_gemma3(&config) {
        return Err(ModelError::Unsupported(
            "Gemma 3 runs on the CPU only for now".into(),
        ));
    }
    let hf = HfConfig::from_json(&config)?;
    build(&hf, &SafetensorsDir::open(dir)?, &Device::Cpu, quantization)
}

/// A folder's `config.json`, parsed.
fn read_config(dir: &Path) -> Result<serde_json::Value, ModelError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))
}

fn build(
    hf: &HfConfig,
    st: &SafetensorsDir,
    device: &Device,
    quantization: Option<GgmlDType>,
) -> Result<Llama, ModelError> {
    let dense = |t: Tensor| linear_from_f32(t, quantization);
    let cfg = &hf.llama;
    let (h, hd, v) = (cfg.hidden_size, cfg.head_dim, cfg.vocab_size);
    let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
    let mat = |name: &str, out: usize, inp: usize| st.f32(name, &[out, inp], device);
    let vec = |name: &str, len: usize| st.f32(name, &[len], device);

    // Quantized once, one copy for the lookup and a tied head; the f32 copy dies here.
    let embed = dense(mat("model.embed_tokens.weight", v, h)?)?;
    let lm_head = if hf.tie_word_embeddings {
        embed.clone()
    } else if st.contains("lm_head.weight") {
        dense(mat("lm_head.weight", v, h)?)?
    } else {
        return Err(ModelError::Invalid(
            "no lm_head.weight and tie_word_embeddings is false".into(),
        ));
    };
    // Not with_capacity(num_layers): the count is the file's word; a lie would be a
    // giant allocation. The first missing layer tensor ends the loop instead.
    let mut layers = Vec::new();
    for i in 0..cfg.num_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        let qkv_bias = if hf.qkv_bias {
            Some([
                vec(&p("self_attn.q_proj.bias"), qd)?,
                vec(&p("self_attn.k_proj.bias"), kvd)?,
                vec(&p("self_attn.v_proj.bias"), kvd)?,
            ])
        } else {
            None
        };
        let qk_norm = if hf.qk_norm {
            Some([
                vec(&p("self_attn.q_norm.weight"), hd)?,
                vec(&p("self_attn.k_norm.weight"), hd)?,
            ])
        } else {
            None
        };
        layers.push(Layer {
            attn_norm: vec(&p("input_layernorm.weight"), h)?,
            wq: dense(mat(&p("self_attn.q_proj.weight"), qd, h)?)?,
            wk: dense(mat(&p("self_attn.k_proj.weight"), kvd, h)?)?,
            wv: dense(mat(&p("self_attn.v_proj.weight"), kvd, h)?)?,
            wo: dense(mat(&p("self_attn.o_proj.weight"), h, qd)?)?,
            qkv_bias,
            qk_norm,
            ffn_norm: vec(&p("post_attention_layernorm.weight"), h)?,
            w_gate: dense(mat(&p("mlp.gate_proj.weight"), cfg.ffn_size, h)?)?,
            w_up: dense(mat(&p("mlp.up_proj.weight"), cfg.ffn_size, h)?)?,
            w_down: dense(mat(&p("mlp.down_proj.weight"), h, cfg.ffn_size)?)?,
        });
    }
    let mut llama = Llama {
        spec: cfg.spec(),
        rope: Rope::new(hd, cfg.rope_theta, hf.rope_freq_factors.as_deref())?,
        cfg: cfg.clone(),
        embed,
        layers,
        norm: vec("model.norm.weight", h)?,
        lm_head,
        attn: Box::new(CpuPagedAttention),
        device: device.clone(),
        cpu_layers: None,
    };
    // Quantized on load, the matrices are held for hearth's kernels: buffered layers.
    llama.set_step_buffers(true)?;
    Ok(llama)
}
