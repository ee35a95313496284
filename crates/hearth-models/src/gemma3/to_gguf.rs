//! A Gemma 3 Hugging Face folder to a GGUF file the way llama.cpp's
//! `convert_hf_to_gguf.py` (`Gemma3Model`) writes it: llama.cpp tensor names, every
//! `*norm.weight` stored as `1 + w`, q/k unpermuted (llama.cpp ropes Gemma neox-style).
//! Only the text decoder is written (a multimodal checkpoint's vision tower is skipped).

use super::Gemma3Config;
use crate::gguf_stream::TensorHeader;
use crate::hf_to_gguf::{file_type, write_gguf_file, GgufSummary};
use crate::hf_vocab_meta::tokenizer_metadata;
use crate::quantize::fitting_type;
use crate::safetensors::SafetensorsDir;
use crate::ModelError;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use std::path::Path;

/// Hugging Face name, and whether it is a norm (stored `+ 1`).
type Source = (String, bool);

fn plan(
    cfg: &Gemma3Config,
    pre: &str,
    untied: bool,
    dtype: GgmlDType,
) -> Vec<(TensorHeader, Source)> {
    let (h, hd, f, v) = (cfg.hidden_size, cfg.head_dim, cfg.ffn_size, cfg.vocab_size);
    let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
    let mut out = Vec::new();
    let mut add = |gg: String, hf: String, dims: Vec<usize>| {
        let norm = dims.len() == 1;
        let dtype = match dims[..] {
            [_, cols] => fitting_type(dtype, cols),
            _ => GgmlDType::F32,
        };
        out.push((
            TensorHeader {
                name: gg,
                dims,
                dtype,
            },
            (hf, norm),
        ));
    };
    add(
        "token_embd.weight".into(),
        format!("{pre}embed_tokens.weight"),
        vec![v, h],
    );
    if untied {
        add("output.weight".into(), "lm_head.weight".into(), vec![v, h]);
    }
    add(
        "output_norm.weight".into(),
        format!("{pre}norm.weight"),
        vec![h],
    );
    for i in 0..cfg.num_layers {
        let mut t = |gg: &str, hf: &str, dims: Vec<usize>| {
            add(
                format!("blk.{i}.{gg}.weight"),
                format!("{pre}layers.{i}.{hf}.weight"),
                dims,
            )
        };
        t("attn_norm", "input_layernorm", vec![h]);
        t("attn_q", "self_attn.q_proj", vec![qd, h]);
        t("attn_k", "self_attn.k_proj", vec![kvd, h]);
        t("attn_v", "self_attn.v_proj", vec![kvd, h]);
        t("attn_output", "self_attn.o_proj", vec![h, qd]);
        t("attn_q_norm", "self_attn.q_norm", vec![hd]);
        t("attn_k_norm", "self_attn.k_norm", vec![hd]);
        t("post_attention_norm", "post_attention_layernorm", vec![h]);
        t("ffn_norm", "pre_feedforward_layernorm", vec![h]);
        t("post_ffw_norm", "post_feedforward_layernorm", vec![h]);
        t("ffn_gate", "mlp.gate_proj", vec![f, h]);
        t("ffn_up", "mlp.up_proj", vec![f, h]);
        t("ffn_down", "mlp.down_proj", vec![h, f]);
    }
    out
}

/// Converts `src` (whose parsed `config.json` is `config`) to `dst`.
pub fn convert(
    src: &Path,
    dst: &Path,
    dtype: GgmlDType,
    config: &serde_json::Value,
) -> Result<GgufSummary, ModelError> {
    let cfg = Gemma3Config::from_json(config)?;
    let st = SafetensorsDir::open(src)?;
    let pre = ["model.", "language_model.model.", "model.language_model."]
        .into_iter()
        .find(|p| st.contains(&format!("{p}embed_tokens.weight")))
        .ok_or_else(|| ModelError::Invalid("no Gemma 3 embed_tokens.weight".into()))?;
    let untied = st.contains("lm_head.weight") && !cfg.tie_word_embeddings;
    let mut md = vec![
        (
            "general.architecture".to_string(),
            Value::String("gemma3".into()),
        ),
        ("general.file_type".into(), Value::U32(file_type(dtype))),
        ("general.quantization_version".into(), Value::U32(2)),
    ];
    if let Some(name) = src.file_name() {
        let name = Value::String(name.to_string_lossy().into());
        md.push(("general.name".into(), name));
    }
    md.extend(cfg.gguf_metadata()?);
    // SentencePiece vocabulary from tokenizer.json (scores from its merges).
    md.extend(tokenizer_metadata(src, config, "gemma3", cfg.vocab_size)?);
    let plan = plan(&cfg, pre, untied, dtype);
    let headers: Vec<TensorHeader> = plan.iter().map(|(h, _)| h.clone()).collect();
    let mut sources = plan.iter().map(|(_, s)| s);
    let cpu = &Device::Cpu;
    write_gguf_file(dst, &md, &headers, |h| {
        let (name, norm) = sources
            .next()
            .ok_or_else(|| ModelError::Invalid("tensor plan ran out".into()))?;
        let mut t = st.f32(name, &h.dims, cpu)?;
        if *norm {
            t = (t + 1.0)?;
        }
        crate::quantize::quantize_as(&t, h.dtype)
    })?;
    Ok(GgufSummary {
        architecture: "gemma3".into(),
        tensors: headers.len(),
        tensor_bytes: headers.iter().map(|h| h.bytes() as u64).sum(),
    })
}
