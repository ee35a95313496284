//! Paged KV cache storage: a pool of fixed-size blocks allocated once at start-up, in
//! f32, f16 or int8 (`kv_int8`). Which block belongs to whom is the engine's business
//! (its BlockManager); this file only owns the memory.

use half::f16;
use half::slice::HalfFloatSliceExt;
use half::vec::HalfBitsVecExt;
use std::fmt;
use std::str::FromStr;

/// What K and V are stored in. f16 halves the cache (twice the tokens for the same
/// budget, half the bytes attention reads) at ~5e-4 relative rounding of each K/V
/// value; int8 halves it again (one scale a head and token, `kv_int8`: each value within
/// 1/254 of its head's largest); f32 keeps the model's own values (the reference tests'
/// setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvDtype {
    #[default]
    F32,
    F16,
    Int8,
}

impl KvDtype {
    /// Bytes of one stored value (int8's scales come on top: `head_bytes`).
    pub fn bytes(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
            KvDtype::Int8 => 1,
        }
    }

    /// Bytes of one KV head's `head_dim` values of one token, with int8's f32 scale.
    pub fn head_bytes(self, head_dim: usize) -> usize {
        match self {
            KvDtype::Int8 => head_dim + 4,
            _ => head_dim * self.bytes(),
        }
    }
}

impl fmt::Display for KvDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
            KvDtype::Int8 => "int8",
        })
    }
}

impl FromStr for KvDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(KvDtype::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(KvDtype::F16),
            // q8_0: what llama.cpp and Ollama call their 8-bit K/V cache.
            "int8" | "i8" | "q8" | "q8_0" => Ok(KvDtype::Int8),
            other => Err(format!(
                "unknown KV cache dtype '{other}' (expected f32, f16 or int8)"
            )),
        }
    }
}

/// How the pool is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheLayout {
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub num_blocks: usize,
}

/// Where element `e` of a row (`[head][dim]`, `row_len` long) of slot `at` of pool block
/// `block` lies in a K pool: slot-minor, `[block][element][slot]` (see `KvPool`).
pub(crate) fn k_offset(block: usize, at: usize, e: usize, row_len: usize, bs: usize) -> usize {
    (block * row_len + e) * bs + at
}

impl KvCacheLayout {
    /// Where K's value for `slot` (block `slot / block_size`), KV head `head`, dimension
    /// `d` lies in a layer's K pool (see `KvPool`).
    pub fn k_index(&self, slot: usize, head: usize, d: usize) -> usize {
        let (block, at) = (slot / self.block_size, slot % self.block_size);
        let row = self.num_kv_heads * self.head_dim;
        k_offset(block, at, head * self.head_dim + d, row, self.block_size)
    }

    /// A layer's K pool from K rows laid out like V's (`[slot][head][dim]`, as the GPU
    /// keeps them): each value moved to `k_index`.
    pub fn k_pool_from_rows<T: Copy>(&self, rows: &[T]) -> Vec<T> {
        let row = self.num_kv_heads * self.head_dim;
        let mut out = rows.to_vec();
        for (slot, r) in rows.chunks_exact(row.max(1)).enumerate() {
            for (e, &x) in r.iter().enumerate() {
                out[self.k_index(slot, e / self.head_dim, e % self.head_dim)] = x;
            }
        }
        out
    }

    /// Bytes of K and V for one block across all layers, stored as `dtype`.
    pub fn bytes_per_block(&self, dtype: KvDtype) -> usize {
        2 * self.num_layers * self.block_size * self.num_kv_heads * dtype.head_bytes(self.head_dim)
    }

    /// Largest number of blocks of `dtype` that fits `budget_bytes`.
    pub fn blocks_for_budget(
        num_layers: usize,
        num_kv_heads: usize,
        head_dim: usize,
        block_size: usize,
        budget_bytes: usize,
        dtype: KvDtype,
    ) -> usize {
        let probe = KvCacheLayout {
            num_layers,
            num_kv_heads,
            head_dim,
            block_size,
            num_blocks: 1,
        };
        budget_bytes / probe.bytes_per_block(dtype).max(1)
    }
}

/// Where scale `(block, head, at)` of an int8 pool lies: `[block][head][slot]`, so a
/// block's slots of one head lie together (as K's values of one dimension do).
pub(crate) fn scale_offset(block: usize, at: usize, head: usize, nkv: usize, bs: usize) -> usize {
    k_offset(block, at, head, nkv, bs)
}

/// One layer's K or V. V is `[num_blocks, block_size, num_kv_heads, head_dim]`; K is
/// `[num_blocks, num_kv_heads, head_dim, block_size]` (`KvCacheLayout::k_index`): a
/// dimension's values for a block's slots lie together, so CPU attention scores 8
/// keys a vector, with no sum across lanes. An int8 pool adds a scale per slot and KV
/// head, `[num_blocks, num_kv_heads, block_size]` (`scale_offset`); value `x` stands
/// for `x * scale`.
pub enum KvPool {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I8 { q: Vec<i8>, scale: Vec<f32> },
}

/// Where one token's K or V row goes: element `e` at `at + e * stride`; an int8 pool's
/// scale of head `h` (elements `h * head_dim..`) at `scale_at + h * scale_stride`.
#[derive(Debug, Clone, Copy)]
struct RowPlace {
    at: usize,
    stride: usize,
    head_dim: usize,
    scale_at: usize,
    scale_stride: usize,
}

impl KvPool {
    fn zeros(dtype: KvDtype, len: usize, head_dim: usize) -> Self {
        match dtype {
            KvDtype::F32 => KvPool::F32(vec![0.0; len]),
            // Zeroed u16s come from calloc, whose pages are touched only when used (a
            // `vec![f16::ZERO; len]` would write all of them at start-up).
            KvDtype::F16 => KvPool::F16(vec![0u16; len].reinterpret_into()),
            KvDtype::Int8 => KvPool::I8 {
                q: vec![0i8; len],
                scale: vec![0f32; len / head_dim.max(1)],
            },
        }
    }

    /// Asks for the line holding element `at` for writing; it changes nothing else.
    #[inline(always)]
    fn prefetch_write(&self, at: usize) {
        prefetch_line(match self {
            KvPool::F32(v) => v.as_ptr().wrapping_add(at) as *const i8,
            KvPool::F16(v) => v.as_ptr().wrapping_add(at) as *const i8,
            KvPool::I8 { q, .. } => q.as_ptr().wrapping_add(at),
        })
    }

    /// Asks for the line holding an int8 pool's scale `at` (`scale_offset`) for
    /// writing; nothing for the others.
    #[inline(always)]
    fn prefetch_scale_write(&self, at: usize) {
        if let KvPool::I8 { scale, .. } = self {
            prefetch_line(scale.as_ptr().wrapping_add(at) as *const i8);
        }
    }

    /// The values, if stored as f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            KvPool::F32(v) => Some(v),
            _ => None,
        }
    }

    /// One token's row `src` into its place: as it is in f32, rounded to nearest even
    /// in f16 (up to `STRIDED_RUN` values converted together on the stack: the vector
    /// conversion, where value by value each paid a feature check), each head rounded to
    /// its own scale's levels in int8 (`kv_int8`).
    fn write_row(&mut self, p: RowPlace, src: &[f32]) {
        const STRIDED_RUN: usize = 256;
        match self {
            KvPool::F32(v) if p.stride == 1 => v[p.at..p.at + src.len()].copy_from_slice(src),
            KvPool::F32(v) => src
                .iter()
                .enumerate()
                .for_each(|(e, &x)| v[p.at + e * p.stride] = x),
            KvPool::F16(v) if p.stride == 1 => {
                v[p.at..p.at + src.len()].convert_from_f32_slice(src)
            }
            KvPool::F16(v) => {
                let mut run = [f16::ZERO; STRIDED_RUN];
                for (r, part) in src.chunks(STRIDED_RUN).enumerate() {
                    let run = &mut run[..part.len()];
                    run.convert_from_f32_slice(part);
                    let first = p.at + r * STRIDED_RUN * p.stride;
                    for (e, &x) in run.iter().enumerate() {
                        v[first + e * p.stride] = x;
                    }
                }
            }
            KvPool::I8 { q, scale } => {
                for (h, head) in src.chunks(p.head_dim.max(1)).enumerate() {
                    let first = p.at + h * p.head_dim * p.stride;
                    let s = if p.stride == 1 {
                        crate::kv_int8::quantize_head(head, &mut q[first..first + head.len()])
                    } else {
                        // On the stack for heads of up to 512 values (all the target
                        // models'), then placed.
                        let mut stack = [0i8; 512];
                        let mut heap = Vec::new();
                        let levels = match stack.get_mut(..head.len()) {
                            Some(l) => l,
                            None => {
                                heap.resize(head.len(), 0);
                                &mut heap[..]
                            }
                        };
                        let s = crate::kv_int8::quantize_head(head, levels);
                        for (e, &x) in levels.iter().enumerate() {
                            q[first + e * p.stride] = x;
                        }
                        s
                    };
                    scale[p.scale_at + h * p.scale_stride] = s;
                }
            }
        }
    }
}

/// Asks for the line at `p` for writing: a prefetch reads nothing architecturally and
/// cannot fault, wherever `p` points.
#[inline(always)]
fn prefetch_line(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as above.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(p)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// CPU storage: per layer, K and V pools.
pub struct KvCache {
    pub layout: KvCacheLayout,
    /// What K and V are stored in (here, or on the model's device).
    pub dtype: KvDtype,
    pub k: Vec<KvPool>,
    pub v: Vec<KvPool>,
}

impl KvCache {
    /// An f32 cache.
    pub fn new(layout: KvCacheLayout) -> Self {
        Self::with_dtype(layout, KvDtype::F32)
    }

    pub fn with_dtype(layout: KvCacheLayout, dtype: KvDtype) -> Self {
        let per_layer =
            layout.num_blocks * layout.block_size * layout.num_kv_heads * layout.head_dim;
        KvCache {
            layout,
            dtype,
            k: (0..layout.num_layers)
                .map(|_| KvPool::zeros(dtype, per_layer, layout.head_dim))
                .collect(),
            v: (0..layout.num_layers)
                .map(|_| KvPool::zeros(dtype, per_layer, layout.head_dim))
                .collect(),
        }
    }
}

impl KvCache {
    /// The layout alone, no storage: for a model that holds K/V on its device, as
    /// `dtype`.
    pub fn layout_only(layout: KvCacheLayout, dtype: KvDtype) -> Self {
        KvCache {
            layout,
            dtype,
            k: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Floats in one token's K (or V) row: all KV heads of one slot.
    pub fn row_len(&self) -> usize {
        self.layout.num_kv_heads * self.layout.head_dim
    }

    /// Total slots in the pool (`num_blocks * block_size`).
    pub fn num_slots(&self) -> usize {
        self.layout.num_blocks * self.layout.block_size
    }

    /// Copies row `i` of `k`/`v` (`[T, num_kv_heads * head_dim]`, row-major) into
    /// `slots[i]` of `layer` (K's values to their `k_index`). Slots must already be
    /// validated against the pool.
    pub fn write(&mut self, layer: usize, k: &[f32], v: &[f32], slots: &[u32]) {
        let (row, bs) = (self.row_len(), self.layout.block_size);
        let (hd, nkv) = (self.layout.head_dim, self.layout.num_kv_heads);
        let (kl, vl) = (&mut self.k[layer], &mut self.v[layer]);
        for (i, &slot) in slots.iter().enumerate() {
            let slot = slot as usize;
            let (block, at) = (slot / bs, slot % bs);
            // Both pools keep a head's scale of this slot at the same place.
            let place = |at_elem, stride| RowPlace {
                at: at_elem,
                stride,
                head_dim: hd,
                scale_at: scale_offset(block, at, 0, nkv, bs),
                scale_stride: bs,
            };
            // A K row's values are block_size apart (`KvPool`).
            let k_place = place(self.layout.k_index(slot, 0, 0), bs);
            kl.write_row(k_place, &k[i * row..(i + 1) * row]);
            let v_place = place(slot * row, 1);
            vl.write_row(v_place, &v[i * row..(i + 1) * row]);
        }
    }
}

/// K or V, for `KvCache::stored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSide {
    K,
    V,
}

impl KvCache {
    /// The value K (or V) holds for `slot`, KV head `head`, dimension `d` of `layer`,
    /// widened to f32 (int8 times its scale); `None` outside the pool.
    pub fn stored(
        &self,
        side: KvSide,
        layer: usize,
        slot: usize,
        head: usize,
        d: usize,
    ) -> Option<f32> {
        let l = &self.layout;
        if slot >= self.num_slots() || head >= l.num_kv_heads || d >= l.head_dim {
            return None;
        }
        let (pool, at) = match side {
            KvSide::K => (self.k.get(layer)?, l.k_index(slot, head, d)),
            KvSide::V => (
                self.v.get(layer)?,
                (slot * l.num_kv_heads + head) * l.head_dim + d,
            ),
        };
        let bs = l.block_size;
        Some(match pool {
            KvPool::F32(x) => x[at],
            KvPool::F16(x) => x[at].to_f32(),
            KvPool::I8 { q, scale } => {
                let s = scale[scale_offset(slot / bs, slot % bs, head, l.num_kv_heads, bs)];
                f32::from(q[at]) * s
            }
        })
    }
}

/// The most rows `prefetch_writes` asks lines for (~100 lines a row and layer).
const PREFETCH_WRITES_MAX: usize = 64;

impl KvCache {
    /// Asks for the cache lines that `write(layer, .., slots)` will store to, for
    /// writing. A K row's values lie `block_size` apart, over ~100 lines that the step's
    /// weight stream has pushed out of the caches since the last step: called before a
    /// layer's products, the lines arrive while the products run, instead of each store
    /// waiting on memory when the row is written.
    /// A prefill's many rows are left alone: their lines would not fit in the caches.
    pub fn prefetch_writes(&self, layer: usize, slots: &[u32]) {
        let (Some(k), Some(v)) = (self.k.get(layer), self.v.get(layer)) else {
            return;
        };
        if slots.len() > PREFETCH_WRITES_MAX {
            return;
        }
        let (row, bs, size) = (self.row_len(), self.layout.block_size, self.dtype.bytes());
        // K values of one slot on one line: those of 64 / (bs * size) consecutive
        // elements (at least one).
        let k_step = (64 / (bs * size).max(1)).max(1);
        for &slot in slots {
            let slot = slot as usize;
            if slot >= self.num_slots() {
                continue;
            }
            let first = self.layout.k_index(slot, 0, 0);
            for e in (0..row).step_by(k_step) {
                k.prefetch_write(first + e * bs);
            }
            for e in (0..row).step_by((64 / size).max(1)) {
                v.prefetch_write(slot * row + e);
            }
            // An int8 pool's scales of the slot: a line a head (`scale_offset`).
            let nkv = self.layout.num_kv_heads;
            for h in 0..nkv {
                let at = scale_offset(slot / bs, slot % bs, h, nkv, bs);
                k.prefetch_scale_write(at);
                v.prefetch_scale_write(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows (`row` values each) of `x` for the slots of `order`, one after another.
    fn rows_in_order(x: &[f32], order: &[u32], row: usize) -> Vec<f32> {
        order
            .iter()
            .flat_map(|&s| x[s as usize * row..(s as usize + 1) * row].to_vec())
            .collect()
    }

    /// Asking for lines changes no value, in either dtype, for slots inside the pool or
    /// past its end, and for more rows than it prefetches.
    #[test]
    fn prefetching_writes_changes_nothing() {
        let layout = KvCacheLayout {
            num_layers: 2,
            num_kv_heads: 2,
            head_dim: 8,
            block_size: 16,
            num_blocks: 3,
        };
        for dtype in [KvDtype::F32, KvDtype::F16, KvDtype::Int8] {
            let mut cache = KvCache::with_dtype(layout, dtype);
            let (row, slots) = (cache.row_len(), cache.num_slots() as u32);
            let all: Vec<u32> = (0..slots).collect();
            let k: Vec<f32> = (0..all.len() * row).map(|i| i as f32 * 0.25).collect();
            cache.write(1, &k, &k, &all);
            let bits = |c: &KvCache| -> Vec<Vec<u32>> {
                c.k.iter()
                    .chain(&c.v)
                    .map(|p| match p {
                        KvPool::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
                        KvPool::F16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
                        KvPool::I8 { q, scale } => q
                            .iter()
                            .map(|&x| x as u32)
                            .chain(scale.iter().map(|x| x.to_bits()))
                            .collect(),
                    })
                    .collect()
            };
            let before = bits(&cache);
            cache.prefetch_writes(1, &[0, 17, slots - 1, slots, u32::MAX]);
            cache.prefetch_writes(0, &all);
            cache.prefetch_writes(7, &[0]);
            assert_eq!(bits(&cache), before);
        }
    }

    /// An int8 cache gives back each K and V value (read through `stored`: its level
    /// times its head's scale) within half a step of that head's scale, for slots
    /// written out of order; a head whose values are all zero stays zero.
    #[test]
    fn int8_rows_come_back_within_half_a_step_of_their_head() {
        let layout = KvCacheLayout {
            num_layers: 2,
            num_kv_heads: 3,
            head_dim: 20,
            block_size: 4,
            num_blocks: 3,
        };
        let mut cache = KvCache::with_dtype(layout, KvDtype::Int8);
        let (row, slots) = (cache.row_len(), cache.num_slots());
        // Heads of very different magnitudes, one of them all zero.
        let value = |i: usize| match (i / 20) % 3 {
            0 => ((i * 37 % 101) as f32 - 50.0) * 0.3,
            1 => ((i * 53 % 97) as f32 - 48.0) * 1e-3,
            _ => 0.0,
        };
        let k: Vec<f32> = (0..slots * row).map(value).collect();
        let v: Vec<f32> = k.iter().map(|x| -2.0 * x).collect();
        let order: Vec<u32> = (0..slots as u32).rev().collect();
        let by_order = |x: &[f32]| rows_in_order(x, &order, row);
        cache.write(1, &by_order(&k), &by_order(&v), &order);
        for (side, src) in [(KvSide::K, &k), (KvSide::V, &v)] {
            for slot in 0..slots {
                for h in 0..3 {
                    let head = &src[slot * row + h * 20..][..20];
                    let step = head.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
                    for (d, &x) in head.iter().enumerate() {
                        let got = cache.stored(side, 1, slot, h, d).expect("in the pool");
                        assert!(
                            (got - x).abs() <= 0.5 * step * (1.0 + 1e-5),
                            "{side:?} slot {slot} head {h} dim {d}: {got} for {x}"
                        );
                        if step == 0.0 {
                            assert_eq!(got, 0.0);
                        }
                    }
                }
            }
        }
        assert_eq!(
            cache.stored(KvSide::K, 0, 3, 0, 0),
            Some(0.0),
            "layer 0 untouched"
        );
        assert_eq!(cache.stored(KvSide::V, 1, slots, 0, 0), None);
    }

    /// K rows written slot by slot land where `k_index` says, V rows as rows, and
    /// `k_pool_from_rows` builds the same K pool from rows in slot order: every slot,
    /// head and dimension at its own place; an f16 pool holds each value rounded as
    /// `f16::from_f32` does. The second layout's rows (320 values) are longer than one
    /// run of `write_strided`'s f16 conversion.
    #[test]
    fn k_is_stored_slot_minor_and_v_as_rows() {
        for (num_kv_heads, head_dim, num_blocks) in [(2, 3, 5), (8, 40, 2)] {
            let layout = KvCacheLayout {
                num_layers: 1,
                num_kv_heads,
                head_dim,
                block_size: 4,
                num_blocks,
            };
            let mut cache = KvCache::new(layout);
            let mut f16_cache = KvCache::with_dtype(layout, KvDtype::F16);
            let (row, slots) = (cache.row_len(), cache.num_slots());
            let k: Vec<f32> = (0..slots * row).map(|i| i as f32).collect();
            let v: Vec<f32> = k.iter().map(|x| -x).collect();
            // Slots written out of order: where a row lands depends on its slot alone.
            let order: Vec<u32> = (0..slots as u32).rev().collect();
            let by_order = |x: &[f32]| rows_in_order(x, &order, row);
            cache.write(0, &by_order(&k), &by_order(&v), &order);
            let stored_k = cache.k[0].as_f32().expect("f32 pool");
            assert_eq!(stored_k, layout.k_pool_from_rows(&k).as_slice());
            assert_eq!(cache.v[0].as_f32().expect("f32 pool"), v.as_slice());
            for slot in 0..slots {
                for head in 0..num_kv_heads {
                    for d in 0..head_dim {
                        let want = (slot * row + head * head_dim + d) as f32;
                        assert_eq!(stored_k[layout.k_index(slot, head, d)], want);
                    }
                }
            }
            // A block's dimension holds its slots side by side.
            assert_eq!(layout.k_index(5, 1, 2) + 1, layout.k_index(6, 1, 2));
            // Values off f16's grid, so that the rounding shows.
            let k_off: Vec<f32> = k.iter().map(|x| x * 0.37 + 0.001).collect();
            f16_cache.write(0, &by_order(&k_off), &by_order(&v), &order);
            let KvPool::F16(stored) = &f16_cache.k[0] else {
                panic!("f16 pool")
            };
            let want: Vec<u16> = layout
                .k_pool_from_rows(&k_off)
                .iter()
                .map(|&x| f16::from_f32(x).to_bits())
                .collect();
            assert_eq!(stored.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        }
    }
}
