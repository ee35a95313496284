//! Gemma 3 text decoder over the paged KV cache: scaled embedding, (1 + w) RMSNorms
//! around attention and MLP, per-head q/k norm, GeLU-tanh gated MLP, interleaved
//! sliding-window (local rope base) and global (scaled rope) layers, soft-capping.
//!
//! Sliding layers only read the window's keys (see `AttnShape::window`), but their
//! older KV blocks stay allocated: the engine keeps full-length block tables.

mod config;
mod cpu_layers;
mod gguf_config;
mod gguf_load;
mod load;
pub mod to_gguf;

pub use config::{is_gemma3, Gemma3Config};
pub use gguf_load::load_gguf;
pub use load::load;

use crate::attention::{AttnMeta, AttnShape, PagedAttention};
use crate::gated_mul::{gated_mul, Gate};
use crate::llama::Rope;
use crate::quant::Linear;
use crate::rms_norm::rms_norm;
use crate::rotary::{rotate, Pairing};
use crate::step_rows;
use crate::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec, Next};
use candle_core::{Device, Module, Tensor};

/// Norm weights are stored as `1 + w` (Gemma's offset), so plain RMSNorm applies them.
pub(crate) struct Layer {
    pub(crate) input_norm: Tensor,
    pub(crate) wq: Linear,
    pub(crate) wk: Linear,
    pub(crate) wv: Linear,
    pub(crate) wo: Linear,
    pub(crate) q_norm: Tensor,
    pub(crate) k_norm: Tensor,
    pub(crate) post_attn_norm: Tensor,
    pub(crate) pre_ffn_norm: Tensor,
    pub(crate) post_ffn_norm: Tensor,
    pub(crate) w_gate: Linear,
    pub(crate) w_up: Linear,
    pub(crate) w_down: Linear,
}

pub struct Gemma3 {
    pub(crate) spec: ModelSpec,
    pub(crate) cfg: Gemma3Config,
    /// `[vocab, hidden]` token embeddings (rows), one copy with a tied LM head.
    pub(crate) embed: Linear,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Tensor,
    pub(crate) lm_head: Linear,
    pub(crate) rope_local: Rope,
    pub(crate) rope_global: Rope,
    pub(crate) attn: Box<dyn PagedAttention>,
    pub(crate) device: Device,
    /// The CPU layers' buffers (`cpu_layers`); `None`: candle tensor ops.
    pub(crate) cpu_layers: Option<cpu_layers::CpuLayers>,
}

type Tables = (Tensor, Tensor);

impl Gemma3 {
    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    /// As `Llama::set_step_buffers`: the CPU layers over buffers kept from step to step
    /// (the default where every matrix is held for hearth's kernels), or candle tensor
    /// ops; the same bits either way.
    pub fn set_step_buffers(&mut self, on: bool) -> Result<(), ModelError> {
        self.cpu_layers = match on && self.device.is_cpu() {
            true => cpu_layers::cpu_layers(&self.layers)?,
            false => None,
        };
        Ok(())
    }

    /// Whether the buffered CPU layers run (`set_step_buffers`).
    pub fn step_buffers(&self) -> bool {
        self.cpu_layers.is_some()
    }

    /// Per-head RMSNorm then rotate-half rope.
    fn norm_rope(
        &self,
        x: &Tensor,
        heads: usize,
        w: &Tensor,
        (cos, sin): &Tables,
    ) -> Result<Tensor, ModelError> {
        let (t, hd) = (x.dim(0)?, self.cfg.head_dim);
        let x = x.reshape((t, heads, 1, hd))?.contiguous()?;
        let x = rms_norm(&x, w, self.cfg.rms_eps)?.contiguous()?;
        Ok(rotate(&x, cos, sin, Pairing::Halves)?.reshape((t, heads * hd))?)
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        i: usize,
        x: &Tensor,
        tables: (&Tables, &Tables),
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        let (c, w) = (&self.cfg, &self.layers[i]);
        let sliding = c.sliding[i];
        let rope = if sliding { tables.0 } else { tables.1 };
        cache.prefetch_writes(i, &batch.slot_mapping);
        let h = rms_norm(x, &w.input_norm, c.rms_eps)?;
        // Side by side on the pool, the input quantized once, as in llama.
        let [q, k, v] = Linear::forward_shared(&[&w.wq, &w.wk, &w.wv], &h)?;
        let q = self.norm_rope(&q, c.num_heads, &w.q_norm, rope)?;
        let k = self.norm_rope(&k, c.num_kv_heads, &w.k_norm, rope)?;
        self.attn.write_kv(cache, i, &k, &v, batch)?;
        let shape = AttnShape {
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / c.query_pre_attn_scalar.sqrt(),
            window: sliding.then_some(c.sliding_window),
            softcap: c.attn_softcap,
        };
        let a = self.attn.attend(&q, cache, i, batch, meta, shape)?;
        let a = rms_norm(&w.wo.forward(&a)?, &w.post_attn_norm, c.rms_eps)?;
        let x = (x + a)?;
        let h = rms_norm(&x, &w.pre_ffn_norm, c.rms_eps)?;
        let [gate, up] = Linear::forward_shared(&[&w.w_gate, &w.w_up], &h)?;
        let m = gated_mul(Gate::GeluTanh, &gate, &up)?;
        let m = rms_norm(&w.w_down.forward(&m)?, &w.post_ffn_norm, c.rms_eps)?;
        Ok((x + m)?)
    }

    /// The embedded `ids` through the buffered layers; rows `rows` of the stream after
    /// the last layer, for the LM head.
    fn run_buffered(
        &self,
        cl: &mut cpu_layers::CpuLayers,
        (ids, rows): (&Tensor, &[u32]),
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        self.embed
            .embedding_into(&batch.tokens, &mut cl.buffers.x, ids)?;
        self.layers_buffered(cl, batch, meta, cache)?;
        cl.buffers
            .stream_rows(rows, self.cfg.hidden_size, &self.device)
    }

    /// One step up to the logits: `[wanted, vocab]`, one row for each sequence that
    /// wants logits (their indices in `batch.seqs`, in order); `None` when none does.
    fn forward_step(
        &mut self,
        batch: &BatchInput,
        cache: &mut KvCache,
    ) -> Result<Option<(Tensor, Vec<usize>)>, ModelError> {
        let meta = AttnMeta::for_model(&self.spec, batch, cache)?;
        if batch.tokens.is_empty() {
            return Ok(None);
        }
        let ids = Tensor::from_slice(&batch.tokens, batch.tokens.len(), &self.device)?;
        let wanted: Vec<usize> = (0..batch.seqs.len())
            .filter(|&s| batch.seqs[s].needs_logits)
            .collect();
        let rows: Vec<u32> = wanted.iter().map(|&s| meta.last_row[s] as u32).collect();
        let x = match self.cpu_layers.take() {
            Some(mut cl) => {
                let out = self.run_buffered(&mut cl, (&ids, &rows), batch, &meta, cache);
                self.cpu_layers = Some(cl);
                out?
            }
            None => {
                let scale = (self.cfg.hidden_size as f64).sqrt();
                let mut x = (self.embed.embedding(&ids)? * scale)?;
                let local = self.rope_local.tables(&batch.positions, &self.device)?;
                let global = self.rope_global.tables(&batch.positions, &self.device)?;
                for i in 0..self.layers.len() {
                    x = self.layer(i, &x, (&local, &global), batch, &meta, cache)?;
                }
                if wanted.is_empty() {
                    return Ok(None);
                }
                x.index_select(&Tensor::from_slice(&rows, rows.len(), &self.device)?, 0)?
            }
        };
        if wanted.is_empty() {
            return Ok(None);
        }
        let last = rms_norm(&x, &self.norm, self.cfg.rms_eps)?;
        let mut out = self.lm_head.forward(&last)?;
        if let Some(cap) = self.cfg.final_softcap {
            out = ((out / cap as f64)?.tanh()? * cap as f64)?;
        }
        Ok(Some((out, wanted)))
    }
}

impl CausalLm for Gemma3 {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn forward(
        &mut self,
        batch: &BatchInput,
        cache: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        // On a rayon worker, as `Llama::forward` does, so kernels do not hand off.
        let rows = rayon::scope(|_| self.forward_step(batch, cache))?;
        step_rows::logits_of(rows, batch.seqs.len())
    }

    /// `forward`, with a greedy sequence's token taken from its row (`step_rows`).
    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        let rows = rayon::scope(|_| self.forward_step(batch, cache))?;
        step_rows::picks_of(rows, batch)
    }
}
