//! Paged KV cache storage: a pool of fixed-size blocks allocated once at start-up.
//! Which block belongs to whom is the engine's business (its BlockManager); this
//! file only owns the memory.

/// How the pool is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheLayout {
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub num_blocks: usize,
}

impl KvCacheLayout {
    /// Bytes of K and V for one block across all layers (f32 storage).
    pub fn bytes_per_block(&self) -> usize {
        2 * self.num_layers * self.block_size * self.num_kv_heads * self.head_dim * 4
    }

    /// Largest number of blocks that fits `budget_bytes`.
    pub fn blocks_for_budget(
        num_layers: usize,
        num_kv_heads: usize,
        head_dim: usize,
        block_size: usize,
        budget_bytes: usize,
    ) -> usize {
        let probe = KvCacheLayout {
            num_layers,
            num_kv_heads,
            head_dim,
            block_size,
            num_blocks: 1,
        };
        budget_bytes / probe.bytes_per_block().max(1)
    }
}

/// CPU storage: per layer, K and V as `[num_blocks, block_size, num_kv_heads, head_dim]`.
pub struct KvCache {
    pub layout: KvCacheLayout,
    pub k: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl KvCache {
    pub fn new(layout: KvCacheLayout) -> Self {
        let per_layer =
            layout.num_blocks * layout.block_size * layout.num_kv_heads * layout.head_dim;
        KvCache {
            layout,
            k: (0..layout.num_layers)
                .map(|_| vec![0.0; per_layer])
                .collect(),
            v: (0..layout.num_layers)
                .map(|_| vec![0.0; per_layer])
                .collect(),
        }
    }
}

impl KvCache {
    /// The layout alone, no storage: for a model that holds K/V on its device.
    pub fn layout_only(layout: KvCacheLayout) -> Self {
        KvCache {
            layout,
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
    /// `slots[i]` of `layer`. Slots must already be validated against the pool.
    pub fn write(&mut self, layer: usize, k: &[f32], v: &[f32], slots: &[u32]) {
        let row = self.row_len();
        let (kl, vl) = (&mut self.k[layer], &mut self.v[layer]);
        for (i, &slot) in slots.iter().enumerate() {
            let dst = slot as usize * row;
            kl[dst..dst + row].copy_from_slice(&k[i * row..(i + 1) * row]);
            vl[dst..dst + row].copy_from_slice(&v[i * row..(i + 1) * row]);
        }
    }
}
