//! CPU paged attention: query tiles (up to 16 tokens of a sequence x the query heads of
//! one KV head) are rayon tasks that walk their sequence's block table and read its
//! K and V in place from the pool once per tile (K slot-minor: 8 keys' values of a
//! dimension in one vector), with an online (running-max) softmax over chunks of keys,
//! so no full score vector is materialised.

use super::cpu_kernels::{self, Rows, Running, Simd};
use super::kv_elem::KvElem;
use super::{AttnMeta, AttnShape, PagedAttention};
use crate::cpu_op_inputs::with_f32_values;
use crate::kv_cache::{k_offset, scale_offset};
use crate::shared_out::SharedOut;
use crate::{BatchInput, KvCache, KvPool, ModelError};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::ops::Range;

/// Keys scored at once before the accumulator is rescaled.
const CHUNK: usize = cpu_kernels::MAX_KEYS;

/// Chunks a tile of fewer than 4 queries scores at once.
const SPAN: usize = 4;

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
        with_f32_values(k, |k| {
            with_f32_values(v, |v| write_kv_rows(cache, layer, k, v, batch))
        })??
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
        let mut out = vec![0f32; t * width];
        let scratch = &mut AttnScratch::default();
        with_f32_values(q, |q| {
            attend_rows(q, cache, layer, batch, meta, shape, &mut out, scratch)
        })??;
        Ok(Tensor::from_vec(out, (t, width), &Device::Cpu)?)
    }
}

/// The step's K and V rows (`[T, num_kv_heads * head_dim]` each) into `layer`'s pools
/// at the batch's slots (`CpuPagedAttention::write_kv` on slices).
pub(crate) fn write_kv_rows(
    cache: &mut KvCache,
    layer: usize,
    k: &[f32],
    v: &[f32],
    batch: &BatchInput,
) -> Result<(), ModelError> {
    let want = batch.slot_mapping.len() * cache.row_len();
    if k.len() != want || v.len() != want || layer >= cache.k.len() {
        return Err(ModelError::BadBatch(format!(
            "k/v of {} floats for {want} expected, layer {layer}",
            k.len()
        )));
    }
    cache.write(layer, k, v, &batch.slot_mapping);
    Ok(())
}

/// What a step's attention calls keep from layer to layer: the list of query tiles.
#[derive(Default)]
pub(crate) struct AttnScratch {
    tiles: Vec<QueryTile>,
}

/// `CpuPagedAttention::attend` on slices: `q` (`[T, num_heads * head_dim]`) against
/// `layer`'s pools, into `out` (as long as `q`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_rows(
    q: &[f32],
    cache: &KvCache,
    layer: usize,
    batch: &BatchInput,
    meta: &AttnMeta,
    shape: AttnShape,
    out: &mut [f32],
    scratch: &mut AttnScratch,
) -> Result<(), ModelError> {
    let step = StepAttn {
        q,
        block_size: cache.layout.block_size,
        batch,
        meta,
        shape,
    };
    let tiles = &mut scratch.tiles;
    match (cache.k.get(layer), cache.v.get(layer)) {
        (Some(KvPool::F32(k)), Some(KvPool::F32(v))) => {
            attention_over(&step, (k, v, None), out, tiles)
        }
        (Some(KvPool::F16(k)), Some(KvPool::F16(v))) => {
            attention_over(&step, (k, v, None), out, tiles)
        }
        (Some(KvPool::I8 { q: k, scale: ks }), Some(KvPool::I8 { q: v, scale: vs })) => {
            int8_over(&step, (k, v), KvScales { k: ks, v: vs }, out, tiles)
        }
        _ => Err(ModelError::BadBatch(format!(
            "no K/V pools of one type for layer {layer}"
        ))),
    }
}

/// An int8 pool's scales (`KvPool::I8`), K's and V's, `[num_blocks, num_kv_heads,
/// block_size]` each (`scale_offset`).
#[derive(Debug, Clone, Copy)]
pub struct KvScales<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
}

/// `paged_attention` over int8 pools (`KvPool::I8`): each key's scores are scaled by its
/// K head scale, and each softmax weight by its V head scale (after the denominator took
/// it), so the result is the attention over the values the pools stand for.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_int8(
    q: &[f32],
    (k_pool, v_pool): (&[i8], &[i8]),
    scales: KvScales,
    block_size: usize,
    batch: &BatchInput,
    meta: &AttnMeta,
    shape: AttnShape,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let step = StepAttn {
        q,
        block_size,
        batch,
        meta,
        shape,
    };
    int8_over(&step, (k_pool, v_pool), scales, out, &mut Vec::new())
}

/// What one layer's attention call reads besides the pools: the queries, the pool's
/// block size, the batch and its metadata, the shape.
struct StepAttn<'a> {
    q: &'a [f32],
    block_size: usize,
    batch: &'a BatchInput,
    meta: &'a AttnMeta,
    shape: AttnShape,
}

/// `paged_attention_int8` listing its tiles in `tiles`, after checking the scales
/// against the pools.
fn int8_over(
    step: &StepAttn,
    (k_pool, v_pool): (&[i8], &[i8]),
    scales: KvScales,
    out: &mut [f32],
    tiles: &mut Vec<QueryTile>,
) -> Result<(), ModelError> {
    let per_scale = step.shape.head_dim.max(1);
    if scales.k.len() * per_scale != k_pool.len() || scales.v.len() * per_scale != v_pool.len() {
        return Err(ModelError::BadBatch(format!(
            "int8 K/V scales: {} and {} for pools of {} and {} values",
            scales.k.len(),
            scales.v.len(),
            k_pool.len(),
            v_pool.len()
        )));
    }
    attention_over(step, (k_pool, v_pool, Some(scales)), out, tiles)
}

/// The kernel over plain slices. `q` and `out` are `[T, num_heads, head_dim]`;
/// `v_pool` is one layer's `[num_blocks, block_size, num_kv_heads, head_dim]` and
/// `k_pool` its `[num_blocks, num_kv_heads, head_dim, block_size]` (slot-minor, as
/// `KvCache::write` stores K; `KvCacheLayout::k_pool_from_rows` makes it from rows), in
/// f32 or f16 (widened as they are read). `meta` must come from `AttnMeta::new` on this
/// batch and pool.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention<T: KvElem>(
    q: &[f32],
    k_pool: &[T],
    v_pool: &[T],
    block_size: usize,
    batch: &BatchInput,
    meta: &AttnMeta,
    shape: AttnShape,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let step = StepAttn {
        q,
        block_size,
        batch,
        meta,
        shape,
    };
    attention_over(&step, (k_pool, v_pool, None), out, &mut Vec::new())
}

/// `paged_attention`, with an int8 pool's scales where it has them (checked by the
/// caller against the pools); the step's query tiles are listed in `tiles`.
fn attention_over<T: KvElem>(
    step: &StepAttn,
    (k_pool, v_pool, scales): (&[T], &[T], Option<KvScales>),
    out: &mut [f32],
    tiles: &mut Vec<QueryTile>,
) -> Result<(), ModelError> {
    let StepAttn {
        q,
        block_size,
        batch,
        meta,
        shape,
    } = *step;
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
    query_tiles(batch, meta, nkv, group, tiles);
    let tiles = &tiles[..];
    let out_ptr = SharedOut::new(out);
    let layout = TileLayout {
        nh,
        hd,
        bs: block_size,
        row_len: nkv * hd,
        nkv,
        scale: (scale, softcap),
        window,
        simd: Simd::detect(),
        kv_scales: scales,
    };
    tiles.par_iter().enumerate().for_each(|(i, tile)| {
        let seq = &batch.seqs[tile.seq];
        // A worker takes its tiles in order: the one after this is likely its next.
        let next = tiles.get(i + 1).map(|n| NextTile::of(n, batch, &layout));
        let rows = tile.rows.clone();
        let heads = tile.heads.len();
        let positions = &batch.positions[rows.clone()];
        // A tile calls nothing that could run another tile on this thread, so the
        // worker's scratch is borrowed once at a time.
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let TileScratch { o, work } = &mut *scratch;
            o.clear();
            o.resize(rows.len() * heads * hd, 0.0);
            attend(
                q,
                k_pool,
                v_pool,
                &seq.block_table,
                positions,
                rows.start,
                tile,
                &layout,
                (o, work),
                next,
            );
            for (i, r) in rows.enumerate() {
                let at = (r * nh + tile.heads.start) * hd;
                let src = &o[i * heads * hd..(i + 1) * heads * hd];
                // SAFETY: rows `rows` x heads of this KV head belong to this tile alone,
                // and lie inside `out` (t * nh * hd, checked above).
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out_ptr.at(at), src.len()) };
            }
        });
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
fn query_tiles(
    batch: &BatchInput,
    meta: &AttnMeta,
    nkv: usize,
    group: usize,
    tiles: &mut Vec<QueryTile>,
) {
    let rows: usize = batch
        .seqs
        .iter()
        .map(|s| s.num_new.div_ceil(TILE_ROWS))
        .sum();
    let split = rows * nkv < 4 * rayon::current_num_threads();
    tiles.clear();
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
}

/// How far ahead of the keys in use a tile asks for K and V (`attend_tile`): 2% off an
/// 8-sequence decode step (`decode_step`, settings alternated step by step), from 32
/// to 96 alike.
const PREFETCH_KEYS: usize = 64;

/// The blocks the tile after one reads: where its K/V prefetches go on.
#[derive(Clone, Copy)]
struct NextTile<'a> {
    table: &'a [u32],
    kv_head: usize,
    /// Its first block (of `table`) and the one after its last.
    first: usize,
    end: usize,
}

impl<'a> NextTile<'a> {
    fn of(tile: &QueryTile, batch: &'a BatchInput, l: &TileLayout) -> Self {
        let positions = &batch.positions[tile.rows.clone()];
        let (first, last) = (
            positions.iter().min().copied().unwrap_or(0) as usize,
            positions.iter().max().copied().unwrap_or(0) as usize,
        );
        let lo = l.window.map_or(0, |w| (first + 1).saturating_sub(w));
        let table = &batch.seqs[tile.seq].block_table[..];
        NextTile {
            table,
            kv_head: tile.kv_head,
            first: lo / l.bs,
            end: (last / l.bs + 1).min(table.len()),
        }
    }
}

/// Asks for a KV head's part of pool block `block` in K and V (prefetches: they change
/// nothing, and fault on no address).
#[inline(always)]
fn prefetch_block<T: KvElem>(
    k_pool: &[T],
    v_pool: &[T],
    block: usize,
    kv_head: usize,
    l: &TileLayout,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let size = std::mem::size_of::<T>();
        let k = k_offset(block, 0, kv_head * l.hd, l.row_len, l.bs);
        let k_at = k_pool.as_ptr().wrapping_add(k) as *const i8;
        for off in (0..l.hd * l.bs * size).step_by(64) {
            // SAFETY: a prefetch reads nothing architecturally and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(k_at.wrapping_add(off)) };
        }
        let v = (block * l.bs * l.row_len + kv_head * l.hd) * size;
        let v_at = v_pool.as_ptr() as *const i8;
        for slot in 0..l.bs {
            for off in (0..l.hd * size).step_by(64) {
                let at = v + slot * l.row_len * size + off;
                // SAFETY: as above.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(v_at.wrapping_add(at)) };
            }
        }
        // An int8 pool's scales of the block's slots for this head, K's and V's (a
        // line each where the block holds 16 slots): once a served pool's blocks are
        // scattered, unasked they missed on every chunk (8-sequence TPOT 4.5 -> 5.4 ms
        // after the 2000-token prompts of `bench-vs-llamacpp.sh`).
        if let Some(sc) = l.kv_scales {
            let at = scale_offset(block, 0, kv_head, l.nkv, l.bs);
            for scales in [sc.k, sc.v] {
                let p = scales.as_ptr().wrapping_add(at) as *const i8;
                for off in (0..l.bs * 4).step_by(64) {
                    // SAFETY: as above.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (k_pool, v_pool, block, kv_head, l);
}

/// A worker's buffers for its tiles, reused from tile to tile: a decode step's ~700
/// tiles allocated ~7 each (0.6-1.6% of an 8-sequence step).
#[derive(Default)]
struct TileScratch {
    /// The tile's output, `[row][head][hd]`.
    o: Vec<f32>,
    work: TileWork,
}

/// Per query of a tile: its key range, running maximum and denominator, and its scores
/// of the chunks in hand.
#[derive(Default)]
struct TileWork {
    ranges: Vec<(usize, usize)>,
    max: Vec<f32>,
    denom: Vec<[f32; 8]>,
    scores: Vec<[f32; CHUNK]>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<TileScratch> = std::cell::RefCell::new(TileScratch::default());
}

/// Queries whose slices a tile keeps on the stack (16 rows of groups of up to 8).
const QUERIES_ON_STACK: usize = 128;

/// The shape facts a tile needs, and an int8 pool's scales.
struct TileLayout<'a> {
    nh: usize,
    hd: usize,
    bs: usize,
    row_len: usize,
    nkv: usize,
    scale: (f32, Option<f32>),
    window: Option<usize>,
    simd: Simd,
    kv_scales: Option<KvScales<'a>>,
}

/// `attend_tile` compiled for AVX-512F or AVX2+FMA+F16C with those SIMD inner loops,
/// whichever the CPU has (`Simd`); the portable build does the same fused operations in
/// the same order.
#[allow(clippy::too_many_arguments)]
#[inline]
fn attend<T: KvElem>(
    q: &[f32],
    k_pool: &[T],
    v_pool: &[T],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    (o, work): (&mut [f32], &mut TileWork),
    next: Option<NextTile>,
) {
    // A lone query (one head of a one-sequence decode) ran slower on 16-lane vectors
    // (`paged_attention` bench, 1 sequence, f16 context 513: 24 -> 27-30 µs): its
    // few accumulator chains wait on each other, and each 16-lane f16 load converts
    // for one query only.
    let lone = positions.len() * tile.heads.len() == 1;
    let simd = match l.simd {
        Simd::Avx512 if lone => Simd::Avx2,
        simd => simd,
    };
    match simd {
        // SAFETY: `Simd::detect` found the features each build is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe {
            attend_tile_avx512(
                q,
                k_pool,
                v_pool,
                table,
                positions,
                row0,
                tile,
                l,
                (o, work),
                next,
            )
        },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe {
            attend_tile_avx2(
                q,
                k_pool,
                v_pool,
                table,
                positions,
                row0,
                tile,
                l,
                (o, work),
                next,
            )
        },
        _ => attend_tile(
            Simd::Portable,
            q,
            k_pool,
            v_pool,
            table,
            positions,
            row0,
            tile,
            l,
            (o, work),
            next,
        ),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_tile_avx512<T: KvElem>(
    q: &[f32],
    k_pool: &[T],
    v_pool: &[T],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    (o, work): (&mut [f32], &mut TileWork),
    next: Option<NextTile>,
) {
    attend_tile(
        Simd::Avx512,
        q,
        k_pool,
        v_pool,
        table,
        positions,
        row0,
        tile,
        l,
        (o, work),
        next,
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_tile_avx2<T: KvElem>(
    q: &[f32],
    k_pool: &[T],
    v_pool: &[T],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    (o, work): (&mut [f32], &mut TileWork),
    next: Option<NextTile>,
) {
    attend_tile(
        Simd::Avx2,
        q,
        k_pool,
        v_pool,
        table,
        positions,
        row0,
        tile,
        l,
        (o, work),
        next,
    )
}

/// The chunks `[bounds[c], bounds[c + 1])` of a span (each inside one block) as key
/// vectors for `cpu_kernels::scores`: K of the tile's head in a block has dimension d's
/// slots at `d * bs` from its start (`KvPool`), so a chunk's 16 slots are read in place;
/// where they do not fit in a block (`padded` is then not empty: room for a span), from
/// a copy in `padded`.
fn span_keys<'a, T: KvElem>(
    k_pool: &'a [T],
    padded: &'a mut [T],
    starts: &'a mut [usize; 2 * SPAN],
    bounds: &[usize],
    table: &[u32],
    l: &TileLayout,
    tile: &QueryTile,
) -> cpu_kernels::KeyVectors<'a, T> {
    let (hd, bs) = (l.hd, l.bs);
    let chunks = bounds.len() - 1;
    let direct = padded.is_empty();
    for c in 0..chunks {
        let at = bounds[c];
        let block = table[at / bs] as usize;
        let first = k_offset(block, at % bs, tile.kv_head * hd, l.row_len, bs);
        if direct {
            starts[2 * c] = first;
        } else {
            let dst = &mut padded[c * hd * CHUNK..(c + 1) * hd * CHUNK];
            dst.fill(T::ZERO);
            let keys = bounds[c + 1] - at;
            for d in 0..hd {
                let src = &k_pool[first + d * bs..first + d * bs + keys];
                dst[d * CHUNK..d * CHUNK + keys].copy_from_slice(src);
            }
            starts[2 * c] = c * hd * CHUNK;
        }
        starts[2 * c + 1] = starts[2 * c] + 8;
    }
    cpu_kernels::KeyVectors {
        pool: if direct { k_pool } else { padded },
        starts: &starts[..2 * chunks],
        stride: if direct { bs } else { CHUNK },
        dims: hd,
    }
}

/// The int8 scales (K's or V's) of the tile's KV head for the keys `keys` (inside one
/// block, so side by side: slot-minor), as a chunk's lanes (ones past its keys, whose
/// lanes nothing reads).
#[inline(always)]
fn chunk_scales(
    scales: &[f32],
    keys: Range<usize>,
    table: &[u32],
    tile: &QueryTile,
    l: &TileLayout,
) -> [f32; CHUNK] {
    let block = table[keys.start / l.bs] as usize;
    let at = scale_offset(block, keys.start % l.bs, tile.kv_head, l.nkv, l.bs);
    // A whole chunk as one fixed-size copy; a variable-length copy_from_slice was a
    // libc call a chunk.
    if let Some(whole) = scales.get(at..at + CHUNK).filter(|_| keys.len() == CHUNK) {
        if let Ok(lanes) = <[f32; CHUNK]>::try_from(whole) {
            return lanes;
        }
    }
    let mut lanes = [1f32; CHUNK];
    for (x, &s) in lanes.iter_mut().zip(&scales[at..at + keys.len()]) {
        *x = s;
    }
    lanes
}

/// A chunk's scores (or weights) times its keys' scales, lane by lane. Not inlined:
/// inlined into a loop over a tile's queries, LLVM vectorised that loop instead, 16
/// queries' lane j at a time by gathers and scatters (a 2000-token prefill's attention
/// 54% slower than f16's).
#[inline(never)]
fn scale_lanes(s: &mut [f32; CHUNK], f: &[f32; CHUNK]) {
    for (x, f) in s.iter_mut().zip(f) {
        *x *= f;
    }
}

/// Softmax(q·K·scale)·V for each of the tile's query heads at each of its rows (row
/// `row0 + i` at position `positions[i]`, over keys `[first, position]`; scores
/// soft-capped when asked), into `o` as `[row][head][hd]`. Keys come in chunks that end
/// at every multiple of `CHUNK` and every block boundary; the chunk's scores for all
/// the tile's queries are computed together (`cpu_kernels::scores`, 8 keys a vector
/// from K's slot-minor blocks; a tile of few queries scores `SPAN` chunks at once),
/// then each query folds its own keys of the chunk into its running softmax
/// (`cpu_kernels::weights` for every query, then the V sums, shared by two queries over
/// the same keys). Per query,
/// the operations and their order depend only on its own key range and the keys'
/// positions, so a query gives the same result in any tile, batch or chunked prefill.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_tile<T: KvElem>(
    simd: Simd,
    q: &[f32],
    k_pool: &[T],
    v_pool: &[T],
    table: &[u32],
    positions: &[u32],
    row0: usize,
    tile: &QueryTile,
    l: &TileLayout,
    (o, work): (&mut [f32], &mut TileWork),
    next: Option<NextTile>,
) {
    let (hd, bs) = (l.hd, l.bs);
    let (group, h0) = (tile.heads.len(), tile.heads.start);
    let nq = positions.len() * group;
    // Query i: row i / group, head h0 + i % group; keys [first, ctx).
    let TileWork {
        ranges,
        max,
        denom,
        scores,
    } = work;
    ranges.clear();
    ranges.extend((0..nq).map(|i| {
        let ctx = positions[i / group] as usize + 1;
        (l.window.map_or(0, |w| ctx.saturating_sub(w)), ctx)
    }));
    let query = |i: usize| {
        let at = ((row0 + i / group) * l.nh + h0 + i % group) * hd;
        &q[at..at + hd]
    };
    // On the stack for the tiles of up to `QUERIES_ON_STACK` queries.
    let mut qs_stack: [&[f32]; QUERIES_ON_STACK] = [&[]; QUERIES_ON_STACK];
    let mut qs_heap = Vec::new();
    let qs: &[&[f32]] = if nq <= QUERIES_ON_STACK {
        for (i, x) in qs_stack.iter_mut().take(nq).enumerate() {
            *x = query(i);
        }
        &qs_stack[..nq]
    } else {
        qs_heap.extend((0..nq).map(query));
        &qs_heap
    };
    max.clear();
    max.resize(nq, f32::NEG_INFINITY);
    denom.clear();
    denom.resize(nq, [0f32; 8]);
    // `SPAN` chunks a pass: a decode tile's few queries so fill the pipes with
    // independent chains of fused multiply-adds; on 16-lane vectors a prefill tile's
    // many queries too, 4 queries x 4 chunks a block, each broadcast and each K load
    // feeding four (1.3% off a 208-row tile's attention over 1,800 cached keys, against
    // 2 chunks of 8 queries). A prefill tile on 8-lane vectors takes one chunk a pass.
    let span = match (nq >= 4, simd) {
        (true, Simd::Avx512) | (false, _) => SPAN,
        (true, _) => 1,
    };
    scores.clear();
    scores.resize(span * nq, [0f32; CHUNK]);
    o.fill(0.0);
    let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let max_first = ranges.iter().map(|r| r.0).max().unwrap_or(0);
    let min_ctx = ranges.iter().map(|r| r.1).min().unwrap_or(0);
    let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    // Where a chunk's 16 slots do not fit in its block (block sizes not a multiple of
    // 16), its keys are copied here ([chunk][d][16], zeros past its keys).
    let mut padded = match bs.is_multiple_of(CHUNK) {
        true => Vec::new(),
        false => vec![T::ZERO; span * hd * CHUNK],
    };
    // Chunks begin where a chunk or block begins, whatever the tile's first key, so a
    // key's slot in its chunk (which fixes the order its weight is summed in) depends
    // on its position alone; keys before a query's first are masked like any other.
    let mut start = (lo / CHUNK * CHUNK).max(lo / bs * bs);
    // The K/V a worker reads next, this tile's blocks then the next tile's, are asked
    // for `PREFETCH_KEYS` ahead: a decode tile's few queries go through a block faster
    // than memory delivers it unasked. The first blocks were asked for by the tile
    // before.
    let ahead = PREFETCH_KEYS.div_ceil(bs);
    let own = start / bs..hi.div_ceil(bs);
    let mut asked = own.start + ahead;
    while start < hi {
        while asked < start / bs + ahead {
            if asked < own.end {
                if let Some(&b) = table.get(asked) {
                    prefetch_block(k_pool, v_pool, b as usize, tile.kv_head, l);
                }
            } else if let Some(n) = next {
                let b = n.first + (asked - own.end);
                if b < n.end {
                    prefetch_block(k_pool, v_pool, n.table[b] as usize, n.kv_head, l);
                }
            }
            asked += 1;
        }
        // Up to `span` chunks: [bounds[c], bounds[c + 1]), each inside one block.
        let mut bounds = [start; SPAN + 1];
        let mut n = 0;
        while n < span && bounds[n] < hi {
            let at = bounds[n];
            bounds[n + 1] = ((at / CHUNK + 1) * CHUNK).min((at / bs + 1) * bs).min(hi);
            n += 1;
        }
        let mut starts = [0usize; 2 * SPAN];
        let keys = span_keys(
            k_pool,
            &mut padded,
            &mut starts,
            &bounds[..=n],
            table,
            l,
            tile,
        );
        // Queries after the last whose window starts before the span's end have no key
        // in it.
        let live = ranges
            .iter()
            .rposition(|r| r.0 < bounds[n])
            .map_or(0, |i| i + 1);
        cpu_kernels::scores(simd, &qs[..live], keys, nq, scores);
        if let Some(ks) = l.kv_scales.map(|s| s.k) {
            for c in 0..n {
                let f = chunk_scales(ks, bounds[c]..bounds[c + 1], table, tile, l);
                for s in &mut scores[c * nq..c * nq + live] {
                    scale_lanes(s, &f);
                }
            }
        }
        for c in 0..n {
            let (start, end) = (bounds[c], bounds[c + 1]);
            let scores = &mut scores[c * nq..(c + 1) * nq];
            let live = ranges.iter().rposition(|r| r.0 < end).map_or(0, |i| i + 1);
            // A chunk every query sees whole (all but the last few of a prefill tile, all
            // but the last of a decode's): no query's own range needs working out.
            let whole = start >= max_first && end <= min_ctx;
            let slots_of = |i: usize| {
                if whole {
                    return 0..end - start;
                }
                let (first, ctx) = ranges[i];
                first.max(start).saturating_sub(start)..ctx.min(end).saturating_sub(start)
            };
            // Every query's softmax step first, then the V sums: the steps (short
            // dependent chains of max, exp and sums) may overlap one another, and a V sum
            // of two queries reads both queries' finished weights.
            for i in 0..live {
                let slots = slots_of(i);
                if !slots.is_empty() {
                    let run = Running {
                        max: &mut max[i],
                        denom: &mut denom[i],
                        o: &mut o[i * hd..(i + 1) * hd],
                    };
                    cpu_kernels::weights(simd, &mut scores[i], slots, l.scale, run);
                }
            }
            // The weights (their denominator taken) times the V head scales.
            if let Some(vs) = l.kv_scales.map(|s| s.v) {
                let f = chunk_scales(vs, start..end, table, tile, l);
                for s in &mut scores[..live] {
                    scale_lanes(s, &f);
                }
            }
            // [start, end) lies in one block, so its V rows are contiguous in the pool.
            let v_base =
                (table[start / bs] as usize * bs + start % bs) * l.row_len + tile.kv_head * hd;
            let mut i = 0;
            while i < live {
                let slots = slots_of(i);
                if slots.is_empty() {
                    i += 1;
                    continue;
                }
                let values = Rows {
                    pool: v_pool,
                    base: v_base + slots.start * l.row_len,
                    stride: l.row_len,
                    len: hd,
                };
                // The next queries over the same keys (the row's other heads of the
                // group, and in a whole chunk every query) share the V reads.
                let mut n = 1;
                while n < cpu_kernels::GROUP && i + n < live && (whole || slots_of(i + n) == slots)
                {
                    n += 1;
                }
                let mut w: [&[f32]; cpu_kernels::GROUP] = [&[]; cpu_kernels::GROUP];
                for (k, w) in w.iter_mut().take(n).enumerate() {
                    *w = &scores[i + k][slots.clone()];
                }
                let o = &mut o[i * hd..(i + n) * hd];
                cpu_kernels::weighted_sums(simd, o, &w[..n], values);
                i += n;
            }
        }
        start = bounds[n];
    }
    for i in 0..nq {
        let inv = 1.0 / cpu_kernels::reduce(denom[i]);
        o[i * hd..(i + 1) * hd].iter_mut().for_each(|x| *x *= inv);
    }
}
