//! Copying a block's leading slots into another block, in every layer: how a prefix
//! hit that ends inside a cached block gets those tokens' K/V into a block of the
//! sequence's own (the cached block stays as it is, for whoever else shares it).

use crate::kv_cache::{k_offset, scale_offset, KvCache, KvPool};
use crate::ModelError;

/// Slots `0..slots` of block `src` into the same slots of block `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCopy {
    pub src: u32,
    pub dst: u32,
    pub slots: usize,
}

impl KvPool {
    /// Elements `from..from + len` to `to..to + len` (ranges checked by the caller).
    fn copy_within(&mut self, from: usize, len: usize, to: usize) {
        match self {
            KvPool::F32(v) => v.copy_within(from..from + len, to),
            KvPool::F16(v) => v.copy_within(from..from + len, to),
            KvPool::I8 { q, .. } => q.copy_within(from..from + len, to),
        }
    }

    /// An int8 pool's scales `from..from + len` to `to..to + len` (nothing for the
    /// others).
    fn copy_scales_within(&mut self, from: usize, len: usize, to: usize) {
        if let KvPool::I8 { scale, .. } = self {
            scale.copy_within(from..from + len, to);
        }
    }
}

impl KvCache {
    /// Copies K and V of `c.slots` leading slots of block `c.src` to block `c.dst`, in
    /// every layer. Out-of-range blocks or slots are a bad batch, and nothing is copied;
    /// a layout-only cache (K/V on the model's device) cannot copy.
    pub fn copy_leading_slots(&mut self, c: &KvCopy) -> Result<(), ModelError> {
        if self.k.len() != self.layout.num_layers {
            return Err(ModelError::Unsupported(
                "copying K/V slots of a cache kept on the model's device".into(),
            ));
        }
        let (bs, blocks) = (self.layout.block_size, self.layout.num_blocks);
        let (src, dst) = (c.src as usize, c.dst as usize);
        if src >= blocks || dst >= blocks || c.slots > bs || src == dst {
            return Err(ModelError::BadBatch(format!(
                "cannot copy {} slots of block {src} to block {dst} in a pool of {blocks} \
                 blocks of {bs}",
                c.slots
            )));
        }
        let row = self.row_len();
        // K: a row element's slots lie together (`k_offset`); V: a slot's row does.
        for k in &mut self.k {
            for e in 0..row {
                k.copy_within(
                    k_offset(src, 0, e, row, bs),
                    c.slots,
                    k_offset(dst, 0, e, row, bs),
                );
            }
        }
        for v in &mut self.v {
            v.copy_within(src * bs * row, c.slots * row, dst * bs * row);
        }
        let nkv = self.layout.num_kv_heads;
        for pool in self.k.iter_mut().chain(&mut self.v) {
            for h in 0..nkv {
                pool.copy_scales_within(
                    scale_offset(src, 0, h, nkv, bs),
                    c.slots,
                    scale_offset(dst, 0, h, nkv, bs),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::KvSide;
    use crate::{KvCacheLayout, KvDtype};

    /// After a copy of 3 slots from block 2 to block 0, every layer's K and V of those
    /// slots (each head and dimension) equal the source's; the destination's other
    /// slots and every other block keep their values; bad copies change nothing.
    #[test]
    fn leading_slots_are_copied_in_every_layer_and_nothing_else() {
        let layout = KvCacheLayout {
            num_layers: 2,
            num_kv_heads: 2,
            head_dim: 3,
            block_size: 4,
            num_blocks: 3,
        };
        for dtype in [KvDtype::F32, KvDtype::F16, KvDtype::Int8] {
            let mut cache = KvCache::with_dtype(layout, dtype);
            let (row, slots) = (cache.row_len(), cache.num_slots());
            let all: Vec<u32> = (0..slots as u32).collect();
            for layer in 0..2 {
                let k: Vec<f32> = (0..slots * row).map(|i| (i + 100 * layer) as f32).collect();
                let v: Vec<f32> = k.iter().map(|x| -x).collect();
                cache.write(layer, &k, &v, &all);
            }
            // Int8 values come back through their heads' scales, so a copy that left a
            // scale behind changes them.
            let read = |c: &KvCache, layer: usize, slot: usize, e: usize| -> (f32, f32) {
                let f = |side| {
                    c.stored(side, layer, slot, e / 3, e % 3)
                        .expect("in the pool")
                };
                (f(KvSide::K), f(KvSide::V))
            };
            let before: Vec<(f32, f32)> = (0..2)
                .flat_map(|l| (0..slots).flat_map(move |s| (0..row).map(move |e| (l, s, e))))
                .map(|(l, s, e)| read(&cache, l, s, e))
                .collect();
            for bad in [
                KvCopy {
                    src: 3,
                    dst: 0,
                    slots: 1,
                },
                KvCopy {
                    src: 0,
                    dst: 3,
                    slots: 1,
                },
                KvCopy {
                    src: 1,
                    dst: 0,
                    slots: 5,
                },
                KvCopy {
                    src: 1,
                    dst: 1,
                    slots: 1,
                },
            ] {
                assert!(cache.copy_leading_slots(&bad).is_err(), "{bad:?}");
            }
            let mut on_device = KvCache::layout_only(layout, dtype);
            let good = KvCopy {
                src: 2,
                dst: 0,
                slots: 3,
            };
            assert!(on_device.copy_leading_slots(&good).is_err());
            cache
                .copy_leading_slots(&KvCopy {
                    src: 2,
                    dst: 0,
                    slots: 3,
                })
                .expect("a valid copy");
            let mut i = 0;
            for layer in 0..2 {
                for slot in 0..slots {
                    for e in 0..row {
                        let want = if slot < 3 {
                            before[(layer * slots + 8 + slot) * row + e]
                        } else {
                            before[i]
                        };
                        assert_eq!(
                            read(&cache, layer, slot, e),
                            want,
                            "{dtype} {layer} {slot} {e}"
                        );
                        i += 1;
                    }
                }
            }
        }
    }
}
