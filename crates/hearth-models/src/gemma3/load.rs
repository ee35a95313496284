//! Builds `Gemma3` from a Hugging Face folder (safetensors): matrices dense in f32, or
//! quantized on load like the Llama family (`load_safetensors_dir_with`).

use super::{Gemma3, Gemma3Config, Layer};
use crate::attention::CpuPagedAttention;
use crate::llama::Rope;
use crate::quantize::linear_from_f32;
use crate::safetensors::SafetensorsDir;
use crate::ModelError;
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

pub fn load(
    cfg: &Gemma3Config,
    st: &SafetensorsDir,
    device: &Device,
    quantization: Option<GgmlDType>,
) -> Result<Gemma3, ModelError> {
    let dense = |t: Tensor| linear_from_f32(t, quantization);
    let (h, hd, v, f) = (cfg.hidden_size, cfg.head_dim, cfg.vocab_size, cfg.ffn_size);
    let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
    // Text-only checkpoints name the decoder `model.`; multimodal ones nest it under
    // `language_model.model.` (hub files) or `model.language_model.` (newer saves).
    let pre = ["model.", "language_model.model.", "model.language_model."]
        .into_iter()
        .find(|p| st.contains(&format!("{p}embed_tokens.weight")))
        .ok_or_else(|| ModelError::Invalid("no Gemma 3 embed_tokens.weight".into()))?;
    let mat =
        |name: &str, out: usize, inp: usize| st.f32(&format!("{pre}{name}"), &[out, inp], device);
    // Gemma's RMSNorm scales by (1 + w): fold the offset in once here.
    let norm = |name: &str, len: usize| -> Result<Tensor, ModelError> {
        Ok((st.f32(&format!("{pre}{name}"), &[len], device)? + 1.0)?)
    };
    let embed = dense(mat("embed_tokens.weight", v, h)?)?;
    let lm_head = if st.contains("lm_head.weight") && !cfg.tie_word_embeddings {
        dense(st.f32("lm_head.weight", &[v, h], device)?)?
    } else {
        embed.clone()
    };
    // Not with_capacity(num_layers): the count is the file's word; a lie would be a
    // giant allocation. The first missing layer tensor ends the loop instead.
    let mut layers = Vec::new();
    for i in 0..cfg.num_layers {
        let p = |s: &str| format!("layers.{i}.{s}");
        layers.push(Layer {
            input_norm: norm(&p("input_layernorm.weight"), h)?,
            wq: dense(mat(&p("self_attn.q_proj.weight"), qd, h)?)?,
            wk: dense(mat(&p("self_attn.k_proj.weight"), kvd, h)?)?,
            wv: dense(mat(&p("self_attn.v_proj.weight"), kvd, h)?)?,
            wo: dense(mat(&p("self_attn.o_proj.weight"), h, qd)?)?,
            q_norm: norm(&p("self_attn.q_norm.weight"), hd)?,
            k_norm: norm(&p("self_attn.k_norm.weight"), hd)?,
            post_attn_norm: norm(&p("post_attention_layernorm.weight"), h)?,
            pre_ffn_norm: norm(&p("pre_feedforward_layernorm.weight"), h)?,
            post_ffn_norm: norm(&p("post_feedforward_layernorm.weight"), h)?,
            w_gate: dense(mat(&p("mlp.gate_proj.weight"), f, h)?)?,
            w_up: dense(mat(&p("mlp.up_proj.weight"), f, h)?)?,
            w_down: dense(mat(&p("mlp.down_proj.weight"), h, f)?)?,
        });
    }
    // Linear rope scaling divides every frequency by the factor (global layers only).
    let linear = vec![cfg.rope_linear_factor; hd / 2];
    let mut model = Gemma3 {
        spec: cfg.spec(),
        rope_local: Rope::new(hd, cfg.rope_local_theta, None)?,
        rope_global: Rope::new(hd, cfg.rope_theta, Some(&linear))?,
        cfg: cfg.clone(),
        embed,
        layers,
        norm: norm("norm.weight", h)?,
        lm_head,
        attn: Box::new(CpuPagedAttention),
        device: device.clone(),
        cpu_layers: None,
    };
    model.set_step_buffers(true)?;
    Ok(model)
}
