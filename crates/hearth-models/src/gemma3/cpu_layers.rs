//! The Gemma 3 layers of a CPU step over buffers kept from step to step
//! (`step_buffers`), as `llama::cpu_layers` does for llama: the tensor path's kernels in
//! its order on the same values, so the same bits (`Gemma3::set_step_buffers` picks the
//! path; `tests/gemma3_quantized.rs` compares them).

use super::{Gemma3, Layer};
use crate::attention::cpu::{attend_rows, write_kv_rows};
use crate::attention::{AttnMeta, AttnShape};
use crate::gated_mul::{gated_mul_into, Gate};
use crate::quant::shared_products::products_into;
use crate::rms_norm::rms_norm_into;
use crate::rotary::{rotate_into, Pairing};
use crate::step_buffers::{held, sized, values, StepBuffers};
use crate::{BatchInput, KvCache, ModelError};

/// A layer's norm weights (stored as `1 + w`) as plain values, read once at load.
pub(crate) struct LayerVectors {
    input_norm: Vec<f32>,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_attn_norm: Vec<f32>,
    pre_ffn_norm: Vec<f32>,
    post_ffn_norm: Vec<f32>,
}

/// Gemma 3's buffered path (`CpuLayers::new`).
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
            input_norm: values(&w.input_norm)?,
            q_norm: values(&w.q_norm)?,
            k_norm: values(&w.k_norm)?,
            post_attn_norm: values(&w.post_attn_norm)?,
            pre_ffn_norm: values(&w.pre_ffn_norm)?,
            post_ffn_norm: values(&w.post_ffn_norm)?,
        })
    })
}

impl Gemma3 {
    /// The layers of a step on `batch` over `cl`'s buffers: `cl.buffers.x` holds the
    /// embedded rows on entry (before Gemma's embedding scale) and the stream after the
    /// last layer on return.
    pub(crate) fn layers_buffered(
        &self,
        cl: &mut CpuLayers,
        batch: &BatchInput,
        meta: &AttnMeta,
        cache: &mut KvCache,
    ) -> Result<(), ModelError> {
        let b = &mut cl.buffers;
        // As candle's `x * scale` (an affine of the scale and 0 in f32).
        let scale = (self.cfg.hidden_size as f64).sqrt() as f32;
        b.x.iter_mut().for_each(|v| *v = *v * scale + 0.0);
        self.rope_local
            .tables_into(&batch.positions, (&mut b.cos, &mut b.sin));
        self.rope_global
            .tables_into(&batch.positions, (&mut b.cos2, &mut b.sin2));
        for (i, vecs) in cl.vectors.iter().enumerate() {
            self.layer_buffered(i, vecs, b, batch, meta, cache)?;
        }
        Ok(())
    }

    /// Layer `i` on the stream `b.x`, in place.
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
        let (t, hd, len) = (batch.tokens.len(), c.head_dim, b.x.len());
        let sliding = c.sliding[i];
        cache.prefetch_writes(i, &batch.slot_mapping);
        rms_norm_into(&b.x, &vecs.input_norm, c.rms_eps, sized(&mut b.h, len))?;
        let qkv = [held(&w.wq)?, held(&w.wk)?, held(&w.wv)?];
        products_into(qkv, &b.h, t, &mut b.acts, [&mut b.q, &mut b.k, &mut b.v])?;
        let angles = match sliding {
            true => (&b.cos[..], &b.sin[..]),
            false => (&b.cos2[..], &b.sin2[..]),
        };
        // Per-head RMSNorm, then rotate-half rope.
        for (src, heads, norm, out) in [
            (&b.q, c.num_heads, &vecs.q_norm, &mut b.q_rot),
            (&b.k, c.num_kv_heads, &vecs.k_norm, &mut b.k_rot),
        ] {
            rms_norm_into(src, norm, c.rms_eps, sized(&mut b.normed, src.len()))?;
            let out = sized(out, src.len());
            rotate_into(&b.normed, (t, heads, hd), angles, Pairing::Halves, out)?;
        }
        write_kv_rows(cache, i, &b.k_rot, &b.v, batch)?;
        let shape = AttnShape {
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: hd,
            scale: 1.0 / c.query_pre_attn_scalar.sqrt(),
            window: sliding.then_some(c.sliding_window),
            softcap: c.attn_softcap,
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
        products_into([held(&w.wo)?], &b.attn, t, &mut b.acts, [&mut b.o])?;
        let normed = sized(&mut b.normed, len);
        rms_norm_into(&b.o, &vecs.post_attn_norm, c.rms_eps, normed)?;
        let mid = sized(&mut b.mid, len);
        for ((m, &x), &a) in mid.iter_mut().zip(&b.x).zip(&b.normed) {
            *m = x + a;
        }
        rms_norm_into(&b.mid, &vecs.pre_ffn_norm, c.rms_eps, sized(&mut b.h, len))?;
        let gate_up = [held(&w.w_gate)?, held(&w.w_up)?];
        products_into(gate_up, &b.h, t, &mut b.acts, [&mut b.gate, &mut b.up])?;
        let act = sized(&mut b.act, b.gate.len());
        gated_mul_into(Gate::GeluTanh, &b.gate, &b.up, act)?;
        products_into([held(&w.w_down)?], &b.act, t, &mut b.acts, [&mut b.down])?;
        let normed = sized(&mut b.normed, len);
        rms_norm_into(&b.down, &vecs.post_ffn_norm, c.rms_eps, normed)?;
        for ((x, &m), &d) in b.x.iter_mut().zip(&b.mid).zip(&b.normed) {
            *x = m + d;
        }
        Ok(())
    }
}
