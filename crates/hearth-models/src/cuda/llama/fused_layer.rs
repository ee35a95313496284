//! A layer of a fused decode step (`fused_step.rs`): what `CudaLlama::enqueue` runs
//! for steps of 1-2 tokens on bf16 weights in place of `qkv` and `mlp`. Between the
//! products, H holds the residual stream times the next norm's weights and PARTS its
//! sums of squares.

use super::super::fused_step::{self, NormIn, QkvOut};
use super::{CudaLlama, Layer, StepPtrs, A, ACT, H, PARTS, Q, X};
use crate::ModelError;

impl CudaLlama {
    /// The first layer's norm input, from the embedding rows in X.
    pub(super) fn fused_prep(&self, step: &StepPtrs) -> Result<NormIn, ModelError> {
        let out = NormIn {
            xw: step.s[H],
            parts: step.s[PARTS],
            nparts: 1,
        };
        let w0 = self.layers.first().map_or(0, |l| self.ptr(&l.attn_norm));
        let hidden = self.cfg.hidden_size;
        // Safety: X holds t rows of hidden, H and PARTS t rows of theirs.
        unsafe { fused_step::norm_prep(&self.gpu, out, step.s[X], w0, hidden, step.t)? };
        Ok(out)
    }

    /// q/k/v of the normed `x` with bias and RoPE: q into Q, k and v into `pools`.
    pub(super) fn fused_qkv(
        &self,
        w: &Layer,
        pools: (u64, u64),
        x: NormIn,
        step: &StepPtrs,
    ) -> Result<(), ModelError> {
        let c = &self.cfg;
        let out = QkvOut {
            q: step.s[Q],
            k_pool: pools.0,
            v_pool: pools.1,
            kv_f16: self.kv_f16,
            bias: w.qkv_bias.as_ref().map_or(0, |b| self.ptr(b)),
            positions: step.positions,
            slots: step.slots,
            inv_freq: step.inv_freq,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            neox: c.neox_rope,
        };
        let wqkv = self.single_ref(&w.wqkv)?;
        // Safety: Q holds t * heads * head_dim; the slots were checked against the
        // pools the engine sized.
        unsafe { fused_step::qkv(&self.gpu, wqkv, x, step.t, c.rms_eps, &out) }
    }

    /// o, gate/up with SiLU, and down; returns the next layer's norm input (its
    /// weights are `next`'s attention norm). After the last layer (`next` None) the
    /// down product only adds into X: the final norm reads it.
    pub(super) fn fused_mlp(
        &self,
        w: &Layer,
        next: Option<&Layer>,
        step: &StepPtrs,
    ) -> Result<NormIn, ModelError> {
        let (s, t, eps) = (&step.s, step.t, self.cfg.rms_eps);
        let normed = NormIn {
            xw: s[H],
            parts: s[PARTS],
            nparts: fused_step::residual_parts(self.cfg.hidden_size),
        };
        let ffn_norm = self.ptr(&w.ffn_norm);
        let (wo, gate_up) = (self.single_ref(&w.wo)?, self.single_ref(&w.w_gate_up)?);
        // Safety: A holds t * heads * head_dim bf16, X t * hidden, H and PARTS t rows
        // of theirs, ACT t * ffn.
        unsafe {
            fused_step::residual(&self.gpu, s[X], wo, s[A], t, ffn_norm, normed)?;
            fused_step::silu_norm(&self.gpu, s[ACT], gate_up, normed, t, eps)?;
        }
        let down = self.single_ref(&w.w_down)?;
        match next {
            Some(next) => {
                let next_norm = self.ptr(&next.attn_norm);
                // Safety: as above.
                unsafe {
                    fused_step::residual(&self.gpu, s[X], down, s[ACT], t, next_norm, normed)?
                }
            }
            // Safety: ACT holds t * ffn, X t * hidden.
            None => unsafe { self.matmul(s[ACT], &w.w_down, s[X], t, true)? },
        }
        Ok(normed)
    }
}
