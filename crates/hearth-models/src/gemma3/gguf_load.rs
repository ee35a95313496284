//! Builds `Gemma3` from a llama.cpp-layout GGUF file (`general.architecture = gemma3`).
//! Its norm weights already hold `1 + w` and q/k are in Hugging Face's (neox) order,
//! which is what `Gemma3` runs, so tensors are used as stored.

use super::{Gemma3, Gemma3Config, Layer};
use crate::attention::CpuPagedAttention;
use crate::llama::Rope;
use crate::quant::Linear;
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
    dequantize: bool,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn qtensor(&mut self, name: &str, shape: &[usize]) -> Result<QTensor, ModelError> {
        let info = (self.content.tensor_infos.get(name))
            .ok_or_else(|| ModelError::Invalid(format!("tensor `{name}` is missing")))?;
        if info.shape.dims() != shape {
            return Err(ModelError::Invalid(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                info.shape.dims()
            )));
        }
        (self.content.tensor(self.file, name, self.device))
            .map_err(|e| ModelError::Invalid(format!("tensor `{name}`: {e}")))
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear, ModelError> {
        let t = Arc::new(self.qtensor(name, &[out, inp])?);
        Ok(Linear::new(t, self.dequantize)?)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Tensor, ModelError> {
        Ok(self.qtensor(name, &[len])?.dequantize(self.device)?)
    }
}

pub fn load_gguf<R: Read + Seek>(
    content: &Content,
    file: &mut R,
    device: &Device,
    dequantize: bool,
) -> Result<Gemma3, ModelError> {
    let embd = (content.tensor_infos.get("token_embd.weight"))
        .ok_or_else(|| ModelError::Invalid("tensor `token_embd.weight` is missing".into()))?;
    let (vocab, _) = (embd.shape.dims2())
        .map_err(|_| ModelError::Invalid("token_embd.weight is not a matrix".into()))?;
    let cfg = Gemma3Config::from_gguf(&content.metadata, vocab)?;
    let (h, hd, f) = (cfg.hidden_size, cfg.head_dim, cfg.ffn_size);
    let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
    let mut r = Reader {
        content,
        file,
        device,
        dequantize,
    };
    let embed = r.linear("token_embd.weight", vocab, h)?;
    let lm_head = if content.tensor_infos.contains_key("output.weight") {
        r.linear("output.weight", vocab, h)?
    } else {
        embed.clone()
    };
    // Not with_capacity(num_layers): the count is the file's word; a lie would be a
    // giant allocation. The first missing layer tensor ends the loop instead.
    let mut layers = Vec::new();
    for i in 0..cfg.num_layers {
        let p = |s: &str| format!("blk.{i}.{s}.weight");
        layers.push(Layer {
            input_norm: r.vector(&p("attn_norm"), h)?,
            wq: r.linear(&p("attn_q"), qd, h)?,
            wk: r.linear(&p("attn_k"), kvd, h)?,
            wv: r.linear(&p("attn_v"), kvd, h)?,
            wo: r.linear(&p("attn_output"), h, qd)?,
            q_norm: r.vector(&p("attn_q_norm"), hd)?,
            k_norm: r.vector(&p("attn_k_norm"), hd)?,
            post_attn_norm: r.vector(&p("post_attention_norm"), h)?,
            pre_ffn_norm: r.vector(&p("ffn_norm"), h)?,
            post_ffn_norm: r.vector(&p("post_ffw_norm"), h)?,
            w_gate: r.linear(&p("ffn_gate"), f, h)?,
            w_up: r.linear(&p("ffn_up"), f, h)?,
            w_down: r.linear(&p("ffn_down"), h, f)?,
        });
    }
    let linear = vec![cfg.rope_linear_factor; hd / 2];
    let mut model = Gemma3 {
        spec: cfg.spec(),
        rope_local: Rope::new(hd, cfg.rope_local_theta, None)?,
        rope_global: Rope::new(hd, cfg.rope_theta, Some(&linear))?,
        norm: r.vector("output_norm.weight", h)?,
        cfg,
        embed,
        layers,
        lm_head,
        attn: Box::new(CpuPagedAttention),
        device: device.clone(),
        cpu_layers: None,
    };
    model.set_step_buffers(true)?;
    Ok(model)
}
