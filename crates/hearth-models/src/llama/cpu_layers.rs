//! The llama layers of a CPU step over buffers kept from step to step
//! (`step_buffers`). As candle tensor ops each op allocated its output, its shape and
//! its storage (~3,300 allocations an 8-sequence decode step of the default model, and
//! their zeroing). The kernels are the tensor path's, called in its order on the same
//! values, so the results are the same bits (`Llama::set_step_buffers` picks the path;
//! `tests/step_buffers.rs` and `quantized_hf.rs` compare them).

use super::{Layer, Llama};
use crate::attention::cpu::{attend_rows, write_kv_rows};
use crate::attention::{AttnMeta, AttnShape};
use crate::gated_mul::{gated_mul_into, Gate};
use crate::phase_times::{Lap, Phase};
use crate::quant::shared_products::products_into;
use crate::rms_norm::{add_rms_norm_into, rms_norm_into};
use crate::rotary::{rotate_into, Pairing};
use crate::step_buffers::{add_bias, held, sized, values, StepBuffers};
use crate::{BatchInput, KvCache, ModelError};

/// A layer's vectors (norm weights, biases) as plain values, read once at load.
pub(crate) struct LayerVectors {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    qkv_bias: Option<[Vec<f32>; 3]>,
    qk_norm: Option<[Vec<f32>; 2]>,
}

/// The llama layers' buffered path (`CpuLayers::new`).
pub(crate) type CpuLayers = crate::step_buffers::CpuLayers<LayerVectors>;

/// The buffered path for `layers`, or `None` (`CpuLayers::new`).
pub(crate) fn cpu_layers(layers: &[Layer]) -> Result<Option<CpuLayers>, ModelError> {
    /// The matrices that read one input.
    fn groups(w: &Layer) -> Vec<Vec<&crate::quant::Linear>> {
        vec![
            vec![&w.wq, &w.wk, &w.wv],
            vec![&w.w_gate, &w.w_up],
            vec![&w.wo],
            vec![&w.w_down],
        ]
    }
    CpuLayers::new(layers, groups, |w: &Layer| {
        Ok(LayerVectors {
            attn_norm: values(&w.attn_norm)?,
            ffn_norm: values(&w.ffn_norm)?,
            qkv_bias: match &w.qkv_bias {
                Some([q, k, v]) => Some([values(q)?, values(k)?, values(v)?]),
                None => None,
            },
            qk_norm: match &w.qk_norm {
                Some([q, k]) => Some([values(q)?, values(k)?]),
                None => None,
            },
        })
    })
}

impl Llama {
    /// The layers of a step on `batch` over `cl`'s buffers: `cl.buffers.x` holds the
    /// embedded rows on entry and the stream after the last layer on return.
    pub(crate) fn layers_buffered(
        &self,
        cl: &mut CpuLayers,
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<(), ModelError> {
        let c = &self.cfg;
        let b = &mut cl.buffers;
        self.rope
            .tables_into(&batch.positions, (&mut b.cos, &mut b.sin));
        let mut lap = Lap::start();
        let first = &cl.vectors[0];
        rms_norm_into(
            &b.x,
            &first.attn_norm,
            c.rms_eps,
            sized(&mut b.h, b.x.len()),
        )?;
        lap.mark(Phase::InputNorm);
        for i in 0..self.layers.len() {
            self.layer_buffered(i, &cl.vectors[i], b, batch, meta, cache)?;
            let mut lap = Lap::start();
            let len = b.x.len();
            match cl.vectors.get(i + 1) {
                // The residual add with the next layer's input norm, in one pass.
                Some(next) => {
                    let (x, h) = (sized(&mut b.x, len), sized(&mut b.h, len));
                    add_rms_norm_into(&b.mid, &b.down, &next.attn_norm, c.rms_eps, (x, h))?;
                    lap.mark(Phase::AddAndNorm);
                }
                None => {
                    for ((x, &m), &d) in b.x.iter_mut().zip(&b.mid).zip(&b.down) {
                        *x = m + d;
                    }
                    lap.mark(Phase::ResidualAdd);
                }
            }
        }
        Ok(())
    }

    /// Layer `i` on `b.x` and its input norm `b.h`: leaves the stream after the
    /// attention's residual add in `b.mid` and the MLP's output in `b.down`.
    fn layer_buffered(
        &self,
        i: usize,
        vecs: &LayerVectors,
        b: &mut StepBuffers,
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<(), ModelError> {
        let (c, w) = (&self.cfg, &self.layers[i]);
        let (t, hd) = (batch.tokens.len(), c.head_dim);
        let mut lap = Lap::start();
        cache.prefetch_writes(i, &batch.slot_mapping);
        let qkv = [held(&w.wq)?, held(&w.wk)?, held(&w.wv)?];
        products_into(qkv, &b.h, t, &mut b.acts, [&mut b.q, &mut b.k, &mut b.v])?;
        lap.mark(Phase::QkvProducts);
        if let Some([bq, bk, bv]) = &vecs.qkv_bias {
            add_bias(&mut b.q, bq);
            add_bias(&mut b.k, bk);
            add_bias(&mut b.v, bv);
        }
        let pairing = match c.neox_rope {
            true => Pairing::Halves,
            false => Pairing::Interleaved,
        };
        let angles = (&b.cos[..], &b.sin[..]);
        for (src, heads, norm, out) in [
            (
                &b.q,
                c.num_heads,
                vecs.qk_norm.as_ref().map(|n| &n[0]),
                &mut b.q_rot,
            ),
            (
                &b.k,
                c.num_kv_heads,
                vecs.qk_norm.as_ref().map(|n| &n[1]),
                &mut b.k_rot,
            ),
        ] {
            let out = sized(out, src.len());
            match norm {
                Some(w) => {
                    rms_norm_into(src, w, c.rms_eps, sized(&mut b.normed, src.len()))?;
                    rotate_into(&b.normed, (t, heads, hd), angles, pairing, out)?;
                }
                None => rotate_into(src, (t, heads, hd), angles, pairing, out)?,
            }
        }
        lap.mark(Phase::Rope);
        write_kv_rows(cache, i, &b.k_rot, &b.v, batch)?;
        lap.mark(Phase::KvWrite);
        let shape = AttnShape {
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window: None,
            softcap: None,
        };
        let attn = sized(&mut b.attn, b.q_rot.len());
        attend_rows(
            &b.q_rot,
            cache,
            i,
            batch,
            meta,
            shape,
            attn,
            &mut b.attn_scratch,
        )?;
        lap.mark(Phase::Attention);
        products_into([held(&w.wo)?], &b.attn, t, &mut b.acts, [&mut b.o])?;
        lap.mark(Phase::OutProduct);
        let len = b.x.len();
        let (mid, h) = (sized(&mut b.mid, len), sized(&mut b.h, len));
        add_rms_norm_into(&b.x, &b.o, &vecs.ffn_norm, c.rms_eps, (mid, h))?;
        lap.mark(Phase::AddAndNorm);
        let gate_up = [held(&w.w_gate)?, held(&w.w_up)?];
        products_into(gate_up, &b.h, t, &mut b.acts, [&mut b.gate, &mut b.up])?;
        lap.mark(Phase::GateUpProducts);
        let act = sized(&mut b.act, b.gate.len());
        gated_mul_into(Gate::Silu, &b.gate, &b.up, act)?;
        lap.mark(Phase::GatedActivation);
        products_into([held(&w.w_down)?], &b.act, t, &mut b.acts, [&mut b.down])?;
        lap.mark(Phase::DownProduct);
        Ok(())
    }
}
