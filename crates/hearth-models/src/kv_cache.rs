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
        let probe = KvCacheLayout { num_layers, num_kv_heads, head_dim, block_size, num_blocks: 1 };
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
        let per_layer = layout.num_blocks * layout.block_size * layout.num_kv_heads * layout.head_dim;
        KvCache {
            layout,
            k: (0..layout.num_layers).map(|_| vec![0.0; per_layer]).collect(),
            v: (0..layout.num_layers).map(|_| vec![0.0; per_layer]).collect(),
        }
    }
}
