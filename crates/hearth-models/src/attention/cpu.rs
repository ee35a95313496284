//! CPU paged attention: each (token, head) pair is one rayon task that walks its
//! sequence's block table and reads K/V rows in place from the pool, with an online
//! (running-max) softmax so no score vector is materialised.

use super::{AttnMeta, AttnShape, PagedAttention};
use crate::{BatchInput, KvCache, ModelError};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::ops::Range;

/// Keys scored at once before the accumulator is rescaled (a stack buffer).
const CHUNK: usize = 32;

#[derive(Debug, Default, Clone, Copy)]
pub struct CpuPagedAttention;

impl PagedAttention for CpuPagedAttention {
    fn write_kv(
        &self,
        cache: &mut KvCache,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
        batch: &BatchInput,
    ) -> Result<(), ModelError> {
        let k = k.flatten_all()?.to_vec1::<f32>()?;
        let v = v.flatten_all()?.to_vec1::<f32>()?;
        let want = batch.slot_mapping.len() * cache.row_len();
        if k.len() != want || v.len() != want || layer >= cache.k.len() {
            return Err(ModelError::BadBatch(format!(
                "k/v of {} floats for {want} expected, layer {layer}",
                k.len()
            )));
        }
        cache.write(layer, &k, &v, &batch.slot_mapping);
        Ok(())
    }

    fn attend(
        &self,
        q: &Tensor,
        cache: &KvCache,
        layer: usize,
        batch: &BatchInput,
        meta: &AttnMeta,
        shape: AttnShape,
    ) -> Result<Tensor, ModelError> {
        let t = batch.tokens.len();
        let width = shape.num_heads * shape.head_dim;
        let q = q.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; t * width];
        paged_attention(
            &q,
            &cache.k[layer],
            &cache.v[layer],
            cache.layout.block_size,
            batch,
            meta,
            shape,
            &mut out,
        )?;
        Ok(Tensor::from_vec(out, (t, width), &Device::Cpu)?)
    }
}

/// The kernel over plain slices. `q` and `out` are `[T, num_heads, head_dim]`;
/// `k_pool`/`v_pool` are one layer's `[num_blocks, block_size, num_kv_heads, head_dim]`.
/// `meta` must come from `AttnMeta::new` on this batch and pool.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention(
    q: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    block_size: usize,
    batch: &BatchInput,
    meta: &AttnMeta,
    shape: AttnShape,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let AttnShape {
        num_heads: nh,
        num_kv_heads: nkv,
        head_dim: hd,
        scale,
        window,
        softcap,
    } = shape;
    let t = batch.tokens.len();
    if nkv == 0
        || hd == 0
        || block_size == 0
        || nh % nkv != 0
        || window == Some(0)
        || q.len() != t * nh * hd
        || out.len() != q.len()
    {
        return Err(ModelError::BadBatch(format!(
            "attention shapes: q {} out {} for {t} tokens x {nh} heads x {hd}",
            q.len(),
            out.len()
        )));
    }
    if meta.token_seq.len() != t
        || k_pool.len() != v_pool.len()
        || k_pool.len() % (block_size * nkv * hd) != 0
    {
        return Err(ModelError::BadBatch(
            "attention metadata does not fit the batch".into(),
        ));
    }
    let pool_blocks = k_pool.len() / (block_size * nkv * hd);
    if batch
        .seqs
        .iter()
        .flat_map(|s| &s.block_table)
        .any(|&b| b as usize >= pool_blocks)
    {
        return Err(ModelError::BadBatch("block id outside the pool".into()));
    }
    let group = nh / nkv;
    out.par_chunks_mut(hd).enumerate().for_each(|(idx, o)| {
        let (row, h) = (idx / nh, idx % nh);
        let seq = &batch.seqs[meta.token_seq[row] as usize];
        let ctx = batch.positions[row] as usize + 1;
        let first = window.map_or(0, |w| ctx.saturating_sub(w));
        let qv = &q[idx * hd..(idx + 1) * hd];
        let head_off = (h / group) * hd;
        attend(
            qv,
            k_pool,
            v_pool,
            &seq.block_table,
            first..ctx,
            block_size,
            nkv * hd,
            head_off,
            (scale, softcap),
            o,
        );
    });
    Ok(())
}

/// `attend_one` compiled for AVX2+FMA when the CPU has them (the portable build only
/// assumes SSE2); the arithmetic and its order are the same, so results are too.
#[allow(clippy::too_many_arguments)]
#[inline]
fn attend(
    qv: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    table: &[u32],
    keys: Range<usize>,
    bs: usize,
    row_len: usize,
    head_off: usize,
    scale: (f32, Option<f32>),
    o: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features it is compiled for were just detected.
        return unsafe {
            attend_one_avx2(
                qv, k_pool, v_pool, table, keys, bs, row_len, head_off, scale, o,
            )
        };
    }
    attend_one(
        qv, k_pool, v_pool, table, keys, bs, row_len, head_off, scale, o,
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_one_avx2(
    qv: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    table: &[u32],
    keys: Range<usize>,
    bs: usize,
    row_len: usize,
    head_off: usize,
    scale: (f32, Option<f32>),
    o: &mut [f32],
) {
    attend_one(
        qv, k_pool, v_pool, table, keys, bs, row_len, head_off, scale, o,
    )
}

/// Softmax(q·K·scale)·V over keys `keys` of one head (scores soft-capped when asked),
/// written into `o`. Starting at `keys.start` skips every earlier block unread.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_one(
    qv: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    table: &[u32],
    keys: Range<usize>,
    bs: usize,
    row_len: usize,
    head_off: usize,
    scale: (f32, Option<f32>),
    o: &mut [f32],
) {
    let hd = qv.len();
    let (ctx, (scale, softcap)) = (keys.end, scale);
    o.fill(0.0);
    let mut max = f32::NEG_INFINITY;
    let mut denom = 0f32;
    let mut scores = [0f32; CHUNK];
    let mut start = keys.start;
    while start < ctx {
        // A chunk never crosses a block boundary, so its rows are contiguous in the pool.
        let in_block = start % bs;
        let n = CHUNK.min(bs - in_block).min(ctx - start);
        let base = (table[start / bs] as usize * bs + in_block) * row_len + head_off;
        let mut chunk_max = f32::NEG_INFINITY;
        for (i, s) in scores[..n].iter_mut().enumerate() {
            let k = &k_pool[base + i * row_len..base + i * row_len + hd];
            *s = dot(qv, k) * scale;
            if let Some(cap) = softcap {
                *s = cap * (*s / cap).tanh();
            }
            chunk_max = chunk_max.max(*s);
        }
        if chunk_max > max {
            let c = (max - chunk_max).exp();
            denom *= c;
            o.iter_mut().for_each(|x| *x *= c);
            max = chunk_max;
        }
        for (i, s) in scores[..n].iter().enumerate() {
            let w = (s - max).exp();
            denom += w;
            let v = &v_pool[base + i * row_len..base + i * row_len + hd];
            o.iter_mut().zip(v).for_each(|(x, &vv)| *x += w * vv);
        }
        start += n;
    }
    let inv = 1.0 / denom;
    o.iter_mut().for_each(|x| *x *= inv);
}

/// Dot product with 8 independent accumulators so the compiler can vectorise it.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
