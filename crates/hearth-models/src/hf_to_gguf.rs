//! Converts a Hugging Face folder (Llama 3.x, Qwen2, Qwen3; Gemma 3 in `gemma3::to_gguf`) into a GGUF file with
//! llama.cpp's tensor names and metadata keys, matrices quantized to one GGML type.
//!
//! llama.cpp's `llama` architecture ropes interleaved pairs, so q/k rows are permuted
//! the way its `convert_hf_to_gguf.py` does; qwen2/qwen3 keep Hugging Face's layout
//! (neox rope in llama.cpp). Tensors are read, converted and written one at a time
//! (`gguf_stream`), so memory holds one tensor, not the model.

use crate::gguf_stream::{write_gguf, TensorHeader};
use crate::hf_config::HfConfig;
use crate::hf_vocab_meta::tokenizer_metadata;
use crate::quantize::fitting_type;
use crate::safetensors::SafetensorsDir;
use crate::ModelError;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::io::Write;
use std::path::Path;

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufSummary {
    pub architecture: String,
    pub tensors: usize,
    pub tensor_bytes: u64,
}

/// llama.cpp's `general.file_type` (LLAMA_FTYPE_*) for a file mostly of `t`.
pub(crate) fn file_type(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 14,
        GgmlDType::Q5K => 16,
        GgmlDType::Q6K => 18,
        _ => 0,
    }
}

/// Rows of each head reordered from halves `[x0..x(d/2), y0..]` to pairs
/// `[x0, y0, x1, y1, ..]` (convert_hf_to_gguf.py's `LlamaModel.permute`).
pub fn permute_for_interleaved_rope(w: &Tensor, heads: usize) -> Result<Tensor, ModelError> {
    let (rows, cols) = w.dims2()?;
    if heads == 0 || rows % (2 * heads) != 0 {
        return Err(ModelError::Invalid(format!(
            "{rows} rows do not split into {heads} heads of pairs"
        )));
    }
    Ok(w.reshape((heads, 2, rows / heads / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

fn arch_metadata(hf: &HfConfig, dtype: GgmlDType) -> Vec<(String, Value)> {
    let c = &hf.llama;
    let a = c.architecture.as_str();
    let u = |n: usize| Value::U32(n as u32);
    let mut md = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.file_type".into(), Value::U32(file_type(dtype))),
        ("general.quantization_version".into(), Value::U32(2)),
    ];
    let keys = [
        ("block_count", u(c.num_layers)),
        ("context_length", u(c.max_context)),
        ("embedding_length", u(c.hidden_size)),
        ("feed_forward_length", u(c.ffn_size)),
        ("attention.head_count", u(c.num_heads)),
        ("attention.head_count_kv", u(c.num_kv_heads)),
        ("attention.key_length", u(c.head_dim)),
        ("attention.value_length", u(c.head_dim)),
        ("attention.layer_norm_rms_epsilon", Value::F32(c.rms_eps)),
        ("rope.freq_base", Value::F32(c.rope_theta)),
        ("rope.dimension_count", u(c.head_dim)),
        ("vocab_size", u(c.vocab_size)),
    ];
    md.extend(keys.into_iter().map(|(k, v)| (format!("{a}.{k}"), v)));
    md
}

/// Where a GGUF tensor comes from.
enum Source {
    /// A matrix, quantized; `heads` > 0 permutes its rows for interleaved rope.
    Matrix { name: String, heads: usize },
    /// A vector kept f32 (norms, biases).
    Vector { name: String },
    /// llama3 rope scaling: llama.cpp divides each pair's frequency by these.
    RopeFreqs,
}

/// Every tensor of the file, in order, with its header; nothing is read yet.
fn plan(hf: &HfConfig, dtype: GgmlDType) -> Vec<(TensorHeader, Source)> {
    let c = &hf.llama;
    let (h, hd) = (c.hidden_size, c.head_dim);
    let (qd, kvd) = (c.num_heads * hd, c.num_kv_heads * hd);
    let interleave = c.architecture == "llama";
    let mut out = Vec::new();
    let mut mat = |gg: String, name: String, rows: usize, cols: usize, heads: usize| {
        let heads = if interleave { heads } else { 0 };
        let dtype = fitting_type(dtype, cols);
        let header = TensorHeader {
            name: gg,
            dims: vec![rows, cols],
            dtype,
        };
        out.push((header, Source::Matrix { name, heads }));
    };
    mat(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        c.vocab_size,
        h,
        0,
    );
    if !hf.tie_word_embeddings {
        mat(
            "output.weight".into(),
            "lm_head.weight".into(),
            c.vocab_size,
            h,
            0,
        );
    }
    for i in 0..c.num_layers {
        let (g, p) = (
            |s: &str| format!("blk.{i}.{s}"),
            |s: &str| format!("model.layers.{i}.{s}"),
        );
        mat(
            g("attn_q.weight"),
            p("self_attn.q_proj.weight"),
            qd,
            h,
            c.num_heads,
        );
        mat(
            g("attn_k.weight"),
            p("self_attn.k_proj.weight"),
            kvd,
            h,
            c.num_kv_heads,
        );
        mat(g("attn_v.weight"), p("self_attn.v_proj.weight"), kvd, h, 0);
        mat(
            g("attn_output.weight"),
            p("self_attn.o_proj.weight"),
            h,
            qd,
            0,
        );
        mat(
            g("ffn_gate.weight"),
            p("mlp.gate_proj.weight"),
            c.ffn_size,
            h,
            0,
        );
        mat(
            g("ffn_up.weight"),
            p("mlp.up_proj.weight"),
            c.ffn_size,
            h,
            0,
        );
        mat(
            g("ffn_down.weight"),
            p("mlp.down_proj.weight"),
            h,
            c.ffn_size,
            0,
        );
    }
    // Vectors stay f32 (llama.cpp does the same for norms and biases).
    let mut vector = |gg: String, name: String, len: usize| {
        let header = TensorHeader {
            name: gg,
            dims: vec![len],
            dtype: GgmlDType::F32,
        };
        out.push((header, Source::Vector { name }));
    };
    vector("output_norm.weight".into(), "model.norm.weight".into(), h);
    for i in 0..c.num_layers {
        let (g, p) = (
            |s: &str| format!("blk.{i}.{s}"),
            |s: &str| format!("model.layers.{i}.{s}"),
        );
        vector(g("attn_norm.weight"), p("input_layernorm.weight"), h);
        vector(
            g("ffn_norm.weight"),
            p("post_attention_layernorm.weight"),
            h,
        );
        if hf.qkv_bias {
            vector(g("attn_q.bias"), p("self_attn.q_proj.bias"), qd);
            vector(g("attn_k.bias"), p("self_attn.k_proj.bias"), kvd);
            vector(g("attn_v.bias"), p("self_attn.v_proj.bias"), kvd);
        }
        if hf.qk_norm {
            vector(g("attn_q_norm.weight"), p("self_attn.q_norm.weight"), hd);
            vector(g("attn_k_norm.weight"), p("self_attn.k_norm.weight"), hd);
        }
    }
    if let Some(f) = &hf.rope_freq_factors {
        let header = TensorHeader {
            name: "rope_freqs.weight".into(),
            dims: vec![f.len()],
            dtype: GgmlDType::F32,
        };
        out.push((header, Source::RopeFreqs));
    }
    out
}

/// Reads one tensor from the map and converts it as its header says.
fn produce(
    hf: &HfConfig,
    st: &SafetensorsDir,
    header: &TensorHeader,
    src: &Source,
) -> Result<QTensor, ModelError> {
    let cpu = &Device::Cpu;
    let t = match src {
        Source::Matrix { name, heads } => {
            let mut t = st.f32(name, &header.dims, cpu)?;
            if *heads > 0 {
                t = permute_for_interleaved_rope(&t, *heads)?;
            }
            t
        }
        Source::Vector { name } => st.f32(name, &header.dims, cpu)?,
        Source::RopeFreqs => {
            let f = hf.rope_freq_factors.as_deref().unwrap_or_default();
            Tensor::from_slice(f, f.len(), cpu)?
        }
    };
    crate::quantize::quantize_as(&t, header.dtype)
}

/// Writes `dst` whole under a temporary name, then renames it (no partial file left).
pub(crate) fn write_gguf_file(
    dst: &Path,
    md: &[(String, Value)],
    headers: &[TensorHeader],
    next: impl FnMut(&TensorHeader) -> Result<QTensor, ModelError>,
) -> Result<(), ModelError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| ModelError::Io { path, source }
    };
    let tmp = dst.with_extension("gguf.partial");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut w = std::io::BufWriter::new(file);
    let written = write_gguf(&mut w, md, headers, next).and_then(|()| w.flush().map_err(io(&tmp)));
    drop(w);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dst).map_err(io(dst))
}

/// Converts the folder `src` to the GGUF file `dst` (written whole, then renamed).
pub fn hf_to_gguf(src: &Path, dst: &Path, dtype: GgmlDType) -> Result<GgufSummary, ModelError> {
    let cfg_path = src.join("config.json");
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| ModelError::Io { path, source }
    };
    let text = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", cfg_path.display())))?;
    if crate::gemma3::is_gemma3(&config) {
        return crate::gemma3::to_gguf::convert(src, dst, dtype, &config);
    }
    let hf = HfConfig::from_json(&config)?;
    let st = SafetensorsDir::open(src)?;
    let mut md = arch_metadata(&hf, dtype);
    if let Some(name) = src.file_name() {
        md.push((
            "general.name".into(),
            Value::String(name.to_string_lossy().into()),
        ));
    }
    md.extend(tokenizer_metadata(
        src,
        &config,
        &hf.llama.architecture,
        hf.llama.vocab_size,
    )?);
    let plan = plan(&hf, dtype);
    let headers: Vec<TensorHeader> = plan.iter().map(|(h, _)| h.clone()).collect();
    let tensor_bytes = headers.iter().map(|h| h.bytes() as u64).sum();
    let mut sources = plan.iter().map(|(_, s)| s);
    write_gguf_file(dst, &md, &headers, |h| {
        let src = sources
            .next()
            .ok_or_else(|| ModelError::Invalid("tensor plan ran out".into()))?;
        produce(&hf, &st, h, src)
    })?;
    Ok(GgufSummary {
        architecture: hf.llama.architecture.clone(),
        tensors: headers.len(),
        tensor_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_pairs_halves_per_head() {
        // 2 heads of dim 4, one column: rows [a0 a1 b0 b1 | c0 c1 d0 d1].
        let w = Tensor::arange(0f32, 8., &Device::Cpu)
            .and_then(|t| t.reshape((8, 1)))
            .expect("w");
        let p = permute_for_interleaved_rope(&w, 2).expect("permute");
        let got: Vec<f32> = p.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert_eq!(got, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        assert!(permute_for_interleaved_rope(&w, 3).is_err());
    }
}
