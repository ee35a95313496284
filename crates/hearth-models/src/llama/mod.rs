//! Llama decoder over the paged KV cache. A step's tokens from all sequences form one
//! `[T, hidden]` matrix, so every weight is read once per step for the whole batch.

mod config;
mod cpu_layers;
mod load;
mod rope;

pub use config::LlamaConfig;
pub use load::{load, load_as};
pub use rope::Rope;

use crate::attention::{AttnMeta, AttnShape, PagedAttention};
use crate::gated_mul::{gated_mul, Gate};
use crate::phase_times::{Lap, Phase};
use crate::quant::Linear;
use crate::rms_norm::{add_rms_norm, rms_norm};
use crate::rotary::{rotate, Pairing};
use crate::step_rows;
use crate::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec, Next};
use candle_core::{Device, Module, Tensor};

pub(crate) struct Layer {
    pub(crate) attn_norm: Tensor,
    pub(crate) wq: Linear,
    pub(crate) wk: Linear,
    pub(crate) wv: Linear,
    pub(crate) wo: Linear,
    /// q/k/v projection biases (Qwen2).
    pub(crate) qkv_bias: Option<[Tensor; 3]>,
    /// Per-head RMSNorm weights of q and k, `[head_dim]` (Qwen3).
    pub(crate) qk_norm: Option<[Tensor; 2]>,
    pub(crate) ffn_norm: Tensor,
    pub(crate) w_gate: Linear,
    pub(crate) w_up: Linear,
    pub(crate) w_down: Linear,
}

pub struct Llama {
    pub(crate) spec: ModelSpec,
    pub(crate) cfg: LlamaConfig,
    /// Token embeddings: rows of this matrix (shared with a tied LM head).
    pub(crate) embed: Linear,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Tensor,
    pub(crate) lm_head: Linear,
    pub(crate) rope: Rope,
    pub(crate) attn: Box<dyn PagedAttention>,
    pub(crate) device: Device,
    /// The CPU layers' buffers (`cpu_layers`); `None`: candle tensor ops.
    pub(crate) cpu_layers: Option<cpu_layers::CpuLayers>,
}

impl Llama {
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Whether a CPU step's layers write into buffers kept from step to step (the
    /// default, where every matrix is held for hearth's kernels) or run as candle tensor
    /// ops (`false`; the two give the same bits). Off the CPU, always tensor ops.
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

    /// Optional per-head RMSNorm, then rotary embedding: interleaved pairs for GGUF,
    /// rotate-half ("neox") for Hugging Face weights.
    fn rope(
        &self,
        x: &Tensor,
        heads: usize,
        norm: Option<&Tensor>,
        (cos, sin): &(Tensor, Tensor),
    ) -> Result<Tensor, ModelError> {
        let (t, hd) = (x.dim(0)?, self.cfg.head_dim);
        let mut x = x.reshape((t, heads, 1, hd))?;
        if let Some(w) = norm {
            x = rms_norm(&x.contiguous()?, w, self.cfg.rms_eps)?;
        }
        let x = x.contiguous()?;
        let pairing = match self.cfg.neox_rope {
            true => Pairing::Halves,
            false => Pairing::Interleaved,
        };
        let y = rotate(&x, cos, sin, pairing)?;
        Ok(y.reshape((t, heads * hd))?)
    }

    /// Layer `i` on the residual stream `x`, whose input RMSNorm `h` the caller made
    /// (with the previous layer's residual add: `add_rms_norm`). Returns the stream after
    /// the attention's residual add and the MLP's output, for the caller to add.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        i: usize,
        (x, h): (&Tensor, &Tensor),
        rope: &(Tensor, Tensor),
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let (c, w) = (&self.cfg, &self.layers[i]);
        let mut lap = Lap::start();
        cache.prefetch_writes(i, &batch.slot_mapping);
        // One input, three products side by side on the pool (a worker that finishes
        // its share of one steals from the next), its rows quantized once for the three
        // where they take the same activation blocks.
        let [mut q, mut k, mut v] = Linear::forward_shared(&[&w.wq, &w.wk, &w.wv], h)?;
        lap.mark(Phase::QkvProducts);
        if let Some([bq, bk, bv]) = &w.qkv_bias {
            (q, k, v) = (
                q.broadcast_add(bq)?,
                k.broadcast_add(bk)?,
                v.broadcast_add(bv)?,
            );
        }
        let (qn, kn) = match &w.qk_norm {
            Some([qn, kn]) => (Some(qn), Some(kn)),
            None => (None, None),
        };
        let q = self.rope(&q, c.num_heads, qn, rope)?;
        let k = self.rope(&k, c.num_kv_heads, kn, rope)?;
        lap.mark(Phase::Rope);
        self.attn.write_kv(cache, i, &k, &v, batch)?;
        lap.mark(Phase::KvWrite);
        let shape = AttnShape {
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: None,
            softcap: None,
        };
        let a = self.attn.attend(&q, cache, i, batch, meta, shape)?;
        lap.mark(Phase::Attention);
        let o = w.wo.forward(&a)?;
        lap.mark(Phase::OutProduct);
        let (x, h) = add_rms_norm(x, &o, &w.ffn_norm, c.rms_eps)?;
        lap.mark(Phase::AddAndNorm);
        let [gate, up] = Linear::forward_shared(&[&w.w_gate, &w.w_up], &h)?;
        lap.mark(Phase::GateUpProducts);
        let m = gated_mul(Gate::Silu, &gate, &up)?;
        lap.mark(Phase::GatedActivation);
        let down = w.w_down.forward(&m)?;
        lap.mark(Phase::DownProduct);
        Ok((x, down))
    }
}

impl CausalLm for Llama {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn forward(
        &mut self,
        batch: &BatchInput,
        cache: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        // The whole step runs on a rayon worker: the kernels' parallel loops then push
        // onto that worker's own deque instead of handing each one over from (and
        // waking) an outside thread, hundreds of times a step.
        let rows = rayon::scope(|_| self.forward_step(batch, cache))?;
        step_rows::logits_of(rows, batch.seqs.len())
    }

    /// `forward`, with a greedy sequence's token taken from its row (`step_rows`).
    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        let rows = rayon::scope(|_| self.forward_step(batch, cache))?;
        step_rows::picks_of(rows, batch)
    }
}

impl Llama {
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

    /// The embedded `ids` through the layers as candle tensor ops.
    fn layers_as_tensors(
        &self,
        ids: &Tensor,
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        let mut x = self.embed.embedding(ids)?;
        let rope = self.rope.tables(&batch.positions, &self.device)?;
        let mut lap = Lap::start();
        let mut h = match self.layers.first() {
            Some(first) => rms_norm(&x, &first.attn_norm, self.cfg.rms_eps)?,
            None => x.clone(),
        };
        lap.mark(Phase::InputNorm);
        for i in 0..self.layers.len() {
            let (mid, down) = self.layer(i, (&x, &h), &rope, batch, meta, cache)?;
            let mut lap = Lap::start();
            // The residual add with the next layer's input norm, in one pass.
            match self.layers.get(i + 1) {
                Some(next) => {
                    (x, h) = add_rms_norm(&mid, &down, &next.attn_norm, self.cfg.rms_eps)?;
                    lap.mark(Phase::AddAndNorm);
                }
                None => {
                    x = (mid + down)?;
                    lap.mark(Phase::ResidualAdd);
                }
            }
        }
        Ok(x)
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
        // LM head only on the rows that will be sampled.
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
                let x = self.layers_as_tensors(&ids, batch, &meta, cache)?;
                if wanted.is_empty() {
                    return Ok(None);
                }
                x.index_select(&Tensor::from_slice(&rows, rows.len(), &self.device)?, 0)?
            }
        };
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut lap = Lap::start();
        let last = rms_norm(&x, &self.norm, self.cfg.rms_eps)?;
        let out = self.lm_head.forward(&last)?;
        lap.mark(Phase::LmHead);
        Ok(Some((out, wanted)))
    }
}
