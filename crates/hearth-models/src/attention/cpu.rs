//! CPU paged attention: query tiles (up to 16 tokens of a sequence x the query heads of
//! one KV head) are rayon tasks that walk their sequence's block table and read each
//! K/V row in place from the pool once per tile, with an online (running-max) softmax
//! over chunks of keys, so no full score vector is materialised.

use super::cpu_kernels::{self, Rows};
use super::{AttnMeta, AttnShape, PagedAttention};
use crate::shared_out::SharedOut;
use crate::{BatchInput, KvCache, ModelError};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::ops::Range;

/// Keys scored at once before the accumulator is rescaled.
const CHUNK: usize = cpu_kernels::MAX_KEYS;

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
    let tiles = query_tiles(batch, meta, nkv, group);
    let out_ptr = SharedOut::new(out);
    let layout = TileLayout {
        nh,
        hd,
        bs: block_size,
        row_len: nkv * hd,
        scale: (scale, softcap),
        window,
    };
    tiles.par_iter().for_each(|tile| {
        let seq = &batch.seqs[tile.seq];
        let rows = tile.rows.clone();
        let heads = tile.heads.len();
        let mut o = vec![0f32; rows.len() * heads * hd];
        let positions = &batch.positions[rows.clone()];
        attend(
            q,
            k_pool,
            v_pool,
            &seq.block_table,
            positions,
            rows.start,
            tile,
            &layout,
            &mut o,
        );
        for (i, r) in rows.enumerate() {
            let at = (r * nh + tile.heads.start) * hd;
            let src = &o[i * heads * hd..(i + 1) * heads * hd];
            // SAFETY: rows `rows` x heads of this KV head belong to this tile alone, and
            // lie inside `out` (t * nh * hd, checked above).
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out_ptr.at(at), src.len()) };
        }
    });
    Ok(())
}

/// Query tokens of one sequence (consecutive rows) with query heads of one KV head's
/// group: every query of the tile shares each K/V row read from the pool.
struct QueryTile {
    seq: usize,
    rows: Range<usize>,
    kv_head: usize,
    /// Query heads (all of one KV head's group, or one of them).
    heads: Range<usize>,
}

/// Rows a tile takes: up to 16 tokens x the group's heads share each K/V load.
const TILE_ROWS: usize = 16;

/// Tiles of whole KV-head groups; where that leaves fewer tiles than ~4 per thread (a
/// decode step of few sequences), one tile per query head instead, so no core idles.
fn query_tiles(batch: &BatchInput, meta: &AttnMeta, nkv: usize, group: usize) -> Vec<QueryTile> {
    let rows: usize = batch
        .seqs
        .iter()
        .map(|s| s.num_new.div_ceil(TILE_ROWS))
        .sum();
    let split = rows * nkv < 4 * rayon::current_num_threads();
    let mut tiles = Vec::new();
    let mut row = 0;
    for (s, seq) in batch.seqs.iter().enumerate() {
        let end = row + seq.num_new;
        debug_assert!(meta.token_seq[row..end].iter().all(|&x| x as usize == s));
        for r0 in (row..end).step_by(TILE_ROWS) {
            for kv_head in 0..nkv {
                let all = kv_head * group..(kv_head + 1) * group;
                let rows = r0..(r0 + TILE_ROWS).min(end);
                if split {
                    for h in all {
                        let (rows, heads) = (rows.clone(), h..h + 1);
                        tiles.push(QueryTile {
                            seq: s,
                            rows,
                            kv_head,
                            heads,
                        });
                    }
                } else {
                    tiles.push(QueryTile {
                        seq: s,
                        rows,
                        kv_head,
                        heads: all,
                    });
                }
            }
        }
        row = end;
    }
    tiles
}

/// The shape facts a tile needs.
struct TileLayout {
    nh: usize,
    hd: usize,
    bs: usize,
    row_len: usize,
    scale: (f32, Option<f32>),
    window: Option<usize>,
}

/// `attend_tile` compiled for AVX2+FMA with the SIMD inner loops when the CPU has them;
/// the portable build does the same fused operations in the same order.
#[allow(clippy::too_many_arguments)]
#[inline]
fn attend(
    q: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    o: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features it is compiled for were just detected.
        return unsafe { attend_tile_avx2(q, k_pool, v_pool, table, positions, row0, tile, l, o) };
    }
    attend_tile(false, q, k_pool, v_pool, table, positions, row0, tile, l, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_tile_avx2(
    q: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    o: &mut [f32],
) {
    attend_tile(true, q, k_pool, v_pool, table, positions, row0, tile, l, o)
}

/// Softmax(q·K·scale)·V for each of the tile's query heads at each of its rows (row
/// `row0 + i` at position `positions[i]`, over keys `[first, position]`; scores
/// soft-capped when asked), into `o` as `[row][head][hd]`. Keys come in chunks that end
/// at every multiple of `CHUNK` and every block boundary; the chunk's scores for all
/// the tile's queries are computed together (`cpu_kernels::scores`), then each query
/// folds its own keys of the chunk into its running softmax. Per query, the operations
/// and their order depend only on its own key range, so a query gives the same result
/// in any tile, batch or chunked prefill.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_tile(
    simd: bool,
    q: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    o: &mut [f32],
) {
    let (hd, bs) = (l.hd, l.bs);
    let (group, h0) = (tile.heads.len(), tile.heads.start);
    let nq = positions.len() * group;
    // Query i: row i / group, head h0 + i % group; keys [first, ctx).
    let ranges: Vec<(usize, usize)> = (0..nq)
        .map(|i| {
            let ctx = positions[i / group] as usize + 1;
            (l.window.map_or(0, |w| ctx.saturating_sub(w)), ctx)
        })
        .collect();
    let qs: Vec<&[f32]> = (0..nq)
        .map(|i| {
            let at = ((row0 + i / group) * l.nh + h0 + i % group) * hd;
            &q[at..at + hd]
        })
        .collect();
    let mut max = vec![f32::NEG_INFINITY; nq];
    let mut denom = vec![0f32; nq];
    let mut scores = vec![[0f32; CHUNK]; nq];
    o.fill(0.0);
    let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let head_off = tile.kv_head * hd;
    let mut start = lo;
    while start < hi {
        let end = (start / CHUNK + 1) * CHUNK;
        let end = end.min((start / bs + 1) * bs).min(hi);
        // [start, end) lies in one block, so its rows are contiguous in the pool.
        let base = (table[start / bs] as usize * bs + start % bs) * l.row_len + head_off;
        let rows = |pool| Rows {
            pool,
            base,
            stride: l.row_len,
            len: hd,
        };
        if end < hi {
            // The next chunk starts a block (chunks never span one) found through the
            // table, so nothing prefetches it unless asked.
            let next = (end / CHUNK + 1) * CHUNK;
            let next = next.min((end / bs + 1) * bs).min(hi);
            let nbase = (table[end / bs] as usize * bs + end % bs) * l.row_len + head_off;
            let ahead = |pool| Rows {
                pool,
                base: nbase,
                stride: l.row_len,
                len: hd,
            };
            cpu_kernels::prefetch(ahead(k_pool), next - end);
            cpu_kernels::prefetch(ahead(v_pool), next - end);
        }
        // Queries after the last whose window starts before `end` have no key here.
        let live = ranges.iter().rposition(|r| r.0 < end).map_or(0, |i| i + 1);
        cpu_kernels::scores(simd, &qs[..live], rows(k_pool), end - start, &mut scores);
        for (i, &(first, ctx)) in ranges.iter().enumerate().take(live) {
            let p = first.max(start)..ctx.min(end);
            if p.is_empty() {
                continue;
            }
            let w = &mut scores[i][p.start - start..p.end - start];
            w.iter_mut().for_each(|s| *s *= l.scale.0);
            if let Some(cap) = l.scale.1 {
                w.iter_mut().for_each(|s| *s = cap * (*s / cap).tanh());
            }
            let o_i = &mut o[i * hd..(i + 1) * hd];
            let chunk_max = cpu_kernels::max(w);
            if chunk_max > max[i] {
                let c = (max[i] - chunk_max).exp();
                denom[i] *= c;
                o_i.iter_mut().for_each(|x| *x *= c);
                max[i] = chunk_max;
            }
            // Scores become weights in place, in key order.
            w.iter_mut().for_each(|s| *s = exp(*s - max[i]));
            denom[i] += cpu_kernels::sum(w);
            let mut values = rows(v_pool);
            values.base += (p.start - start) * l.row_len;
            cpu_kernels::weighted_sum(simd, o_i, w, values);
        }
        start = end;
    }
    for i in 0..nq {
        let inv = 1.0 / denom[i];
        o[i * hd..(i + 1) * hd].iter_mut().for_each(|x| *x *= inv);
    }
}

/// e^x for x <= 0 (a score minus its running maximum), Cephes' `expf` polynomial without
/// branches so a slice of them vectorises: relative error ~2e-7; below -87.3 it returns
/// e^-87.3 (~1e-38) where libm would return subnormals or 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    f32::from_bits(((n as i32 + 127) << 23) as u32) * y
}

#[cfg(test)]
mod tests {
    /// The polynomial against libm over the range softmax uses.
    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        for i in 0..=100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            let (got, want) = (super::exp(x), x.exp());
            assert!(
                (got - want).abs() <= 4e-7 * want,
                "exp({x}) = {got}, libm {want}"
            );
        }
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-1000.0) < 1e-37);
    }
}
