//! Builds a `Llama` from GGUF tensors (llama.cpp naming), weights kept quantized.

use super::{Layer, Llama, LlamaConfig, Rope};
use crate::attention::CpuPagedAttention;
use crate::quant::{Linear, MatrixForm};
use crate::ModelError;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use std::io::{Read, Seek};
use std::sync::Arc;

struct Reader<'a, R> {
    content: &'a Content,
    file: &'a mut R,
    device: &'a Device,
    form: MatrixForm,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn qtensor(&mut self, name: &str, shape: &[usize]) -> Result<QTensor, ModelError> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| ModelError::Invalid(format!("tensor `{name}` is missing")))?;
        if info.shape.dims() != shape {
            return Err(ModelError::Invalid(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                info.shape.dims()
            )));
        }
        self.content
            .tensor(self.file, name, self.device)
            .map_err(|e| ModelError::Invalid(format!("tensor `{name}`: {e}")))
    }

    /// A layer's weight matrix; Q4_1 ones run on hearth's kernel (see `quant`).
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear, ModelError> {
        let t = Arc::new(self.qtensor(name, &[out, inp])?);
        Ok(Linear::with_form(t, self.form)?)
    }

    /// Norm weights and other vectors, dequantized to f32.
    fn vector(&mut self, name: &str, len: usize) -> Result<Tensor, ModelError> {
        Ok(self.qtensor(name, &[len])?.dequantize(self.device)?)
    }
}

/// `load_as`, the matrices packed for the CPU kernels or (`dequantize`) dense f32.
pub fn load<R: Read + Seek>(
    content: &Content,
    file: &mut R,
    device: &Device,
    dequantize: bool,
) -> Result<Llama, ModelError> {
    let form = if dequantize {
        MatrixForm::Dense
    } else {
        MatrixForm::Packed
    };
    load_as(content, file, device, form)
}

/// A llama from a GGUF file's tensors, its matrices held in `form`.
pub fn load_as<R: Read + Seek>(
    content: &Content,
    file: &mut R,
    device: &Device,
    form: MatrixForm,
) -> Result<Llama, ModelError> {
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| ModelError::Invalid("tensor `token_embd.weight` is missing".into()))?;
    let (vocab, _) = embd
        .shape
        .dims2()
        .map_err(|_| ModelError::Invalid("token_embd.weight is not a matrix".into()))?;
    let arch = crate::gguf_meta::get_str(&content.metadata, "general.architecture")?;
    let cfg = LlamaConfig::from_gguf_arch(&content.metadata, vocab, arch.unwrap_or("llama"))?;
    let (h, hd) = (cfg.hidden_size, cfg.head_dim);
    let mut r = Reader {
        content,
        file,
        device,
        form,
    };

    let embed = r.linear("token_embd.weight", vocab, h)?;
    // Tied embeddings: without `output.weight` the LM head is the embedding matrix,
    // the same copy (a `Linear` clone shares its weights).
    let lm_head = if content.tensor_infos.contains_key("output.weight") {
        r.linear("output.weight", vocab, h)?
    } else {
        embed.clone()
    };
    let freq_factors = if content.tensor_infos.contains_key("rope_freqs.weight") {
        Some(r.vector("rope_freqs.weight", hd / 2)?.to_vec1::<f32>()?)
    } else {
        None
    };
    // Not with_capacity(num_layers): the count is the file's word; a lie would be a
    // giant allocation. The first missing layer tensor ends the loop instead.
    let mut layers = Vec::new();
    for i in 0..cfg.num_layers {
        let p = |s: &str| format!("blk.{i}.{s}.weight");
        let (kvd, qd) = (cfg.num_kv_heads * hd, cfg.num_heads * hd);
        // Qwen2: q/k/v biases; Qwen3: per-head q/k RMSNorm (llama.cpp names).
        let qkv_bias = if cfg.architecture == "qwen2" {
            let b = |s: &str| format!("blk.{i}.{s}.bias");
            Some([
                r.vector(&b("attn_q"), qd)?,
                r.vector(&b("attn_k"), kvd)?,
                r.vector(&b("attn_v"), kvd)?,
            ])
        } else {
            None
        };
        let qk_norm = if cfg.architecture == "qwen3" {
            Some([
                r.vector(&p("attn_q_norm"), hd)?,
                r.vector(&p("attn_k_norm"), hd)?,
            ])
        } else {
            None
        };
        layers.push(Layer {
            attn_norm: r.vector(&p("attn_norm"), h)?,
            wq: r.linear(&p("attn_q"), cfg.num_heads * hd, h)?,
            wk: r.linear(&p("attn_k"), cfg.num_kv_heads * hd, h)?,
            wv: r.linear(&p("attn_v"), cfg.num_kv_heads * hd, h)?,
            wo: r.linear(&p("attn_output"), h, cfg.num_heads * hd)?,
            qkv_bias,
            qk_norm,
            ffn_norm: r.vector(&p("ffn_norm"), h)?,
            w_gate: r.linear(&p("ffn_gate"), cfg.ffn_size, h)?,
            w_up: r.linear(&p("ffn_up"), cfg.ffn_size, h)?,
            w_down: r.linear(&p("ffn_down"), h, cfg.ffn_size)?,
        });
    }
    let norm = r.vector("output_norm.weight", h)?;
    let mut llama = Llama {
        spec: cfg.spec(),
        rope: Rope::new(hd, cfg.rope_theta, freq_factors.as_deref())?,
        cfg,
        embed,
        layers,
        norm,
        lm_head,
        attn: Box::new(CpuPagedAttention),
        device: device.clone(),
        cpu_layers: None,
    };
    llama.set_step_buffers(true)?;
    Ok(llama)
}
