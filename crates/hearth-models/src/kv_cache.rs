//! Paged KV cache storage: a pool of fixed-size blocks allocated once at start-up, in
//! f32 or f16. Which block belongs to whom is the engine's business (its
//! BlockManager); this file only owns the memory.

use half::f16;
use half::slice::HalfFloatSliceExt;
use half::vec::HalfBitsVecExt;
use std::fmt;
use std::str::FromStr;

/// What K and V are stored in. f16 halves the cache (twice the tokens for the same
/// budget, half the bytes attention reads) at ~5e-4 relative rounding of each K/V
/// value; f32 keeps the model's own values (the reference tests' setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvDtype {
    #[default]
    F32,
    F16,
}

impl KvDtype {
    pub fn bytes(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
        }
    }
}

impl fmt::Display for KvDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
        })
    }
}

impl FromStr for KvDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(KvDtype::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(KvDtype::F16),
            other => Err(format!(
                "unknown KV cache dtype '{other}' (expected f32 or f16)"
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
        2 * self.num_layers * self.block_size * self.num_kv_heads * self.head_dim * dtype.bytes()
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

/// One layer's K or V. V is `[num_blocks, block_size, num_kv_heads, head_dim]`; K is
/// `[num_blocks, num_kv_heads, head_dim, block_size]` (`KvCacheLayout::k_index`): a
/// dimension's values for a block's slots lie together, so CPU attention scores 8
/// keys a vector, with no sum across lanes.
pub enum KvPool {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl KvPool {
    fn zeros(dtype: KvDtype, len: usize) -> Self {
        match dtype {
            KvDtype::F32 => KvPool::F32(vec![0.0; len]),
            // Zeroed u16s come from calloc, whose pages are touched only when used (a
            // `vec![f16::ZERO; len]` would write all of them at start-up).
            KvDtype::F16 => KvPool::F16(vec![0u16; len].reinterpret_into()),
        }
    }

    /// Asks for the line holding element `at` for writing; it changes nothing else.
    #[inline(always)]
    fn prefetch_write(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            let p = match self {
                KvPool::F32(v) => v.as_ptr().wrapping_add(at) as *const i8,
                KvPool::F16(v) => v.as_ptr().wrapping_add(at) as *const i8,
            };
            // SAFETY: a prefetch reads nothing architecturally and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_ET0>(p) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// The values, if stored as f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            KvPool::F32(v) => Some(v),
            KvPool::F16(_) => None,
        }
    }

    /// `src` into elements `at..at + src.len()` (rounded to nearest even for f16).
    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            KvPool::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            KvPool::F16(v) => v[at..at + src.len()].convert_from_f32_slice(src),
        }
    }

    /// `src[e]` into element `at + e * stride`, rounded as `write` does: for an f16
    /// pool, up to `STRIDED_RUN` values at a time are converted together on the stack
    /// (the vector conversion; value by value, each paid a feature check), then placed.
    fn write_strided(&mut self, at: usize, stride: usize, src: &[f32]) {
        const STRIDED_RUN: usize = 256;
        match self {
            KvPool::F32(v) => src
                .iter()
                .enumerate()
                .for_each(|(e, &x)| v[at + e * stride] = x),
            KvPool::F16(v) => {
                let mut run = [f16::ZERO; STRIDED_RUN];
                for (r, part) in src.chunks(STRIDED_RUN).enumerate() {
                    let run = &mut run[..part.len()];
                    run.convert_from_f32_slice(part);
                    let first = at + r * STRIDED_RUN * stride;
                    for (e, &x) in run.iter().enumerate() {
                        v[first + e * stride] = x;
                    }
                }
            }
        }
    }
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
                .map(|_| KvPool::zeros(dtype, per_layer))
                .collect(),
            v: (0..layout.num_layers)
                .map(|_| KvPool::zeros(dtype, per_layer))
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
        let (kl, vl) = (&mut self.k[layer], &mut self.v[layer]);
        for (i, &slot) in slots.iter().enumerate() {
            let slot = slot as usize;
            // A K row's values are block_size apart (`KvPool`).
            kl.write_strided(
                self.layout.k_index(slot, 0, 0),
                bs,
                &k[i * row..(i + 1) * row],
            );
            vl.write(slot * row, &v[i * row..(i + 1) * row]);
        }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for dtype in [KvDtype::F32, KvDtype::F16] {
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
            let by_order = |x: &[f32]| -> Vec<f32> {
                order
                    .iter()
                    .flat_map(|&s| x[s as usize * row..(s as usize + 1) * row].to_vec())
                    .collect()
            };
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
