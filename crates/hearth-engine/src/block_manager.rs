//! Paged KV block bookkeeping with prefix caching (after vLLM v1's BlockPool).
//!
//! A full block is keyed by hash(parent key, its token ids). Freed blocks keep their
//! contents: those with a key wait in LRU order (tail blocks of a sequence are freed
//! first, so they are evicted first) and are handed back on a hit; the rest are
//! reused at once. A hit may end inside a cached block (as llama.cpp and SGLang reuse a
//! prefix to the token): that block's matching leading tokens are copied into a new
//! block of the sequence's own, so a shared prefix of any length is computed once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

#[derive(Debug, Clone, Default)]
struct BlockMeta {
    ref_count: u32,
    /// Prefix-cache key while the block holds a registered full block.
    key: Option<u64>,
    /// The block's tokens and parent key, checked on a hit so a hash collision can
    /// never serve wrong K/V.
    tokens: Vec<u32>,
    parent: u64,
    /// Position in the LRU of free cached blocks.
    lru_tick: Option<u64>,
}

pub struct BlockManager {
    block_size: usize,
    enable_prefix_caching: bool,
    blocks: Vec<BlockMeta>,
    /// Free blocks holding nothing reusable.
    plain_free: Vec<u32>,
    /// Free blocks still holding a cached prefix, oldest first.
    cached_free: BTreeMap<u64, u32>,
    cached: HashMap<u64, u32>,
    /// Registered blocks by their parent's key and their first token: where a hit that
    /// ends inside a block looks for the one that continues it furthest (any that does
    /// shares its first token, which keeps each list to the blocks worth comparing).
    children: HashMap<(u64, u32), Vec<u32>>,
    /// Whether hits may end inside a block (the K/V copy it needs is a host one).
    partial_hits: bool,
    tick: u64,
}

/// A cached block whose first `tokens` tokens continue a hit; the block is referenced
/// until its K/V are copied (`BlockManager::release`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialHit {
    pub src: u32,
    pub tokens: usize,
}

/// What the prefix cache holds of a prompt: whole blocks, then maybe part of one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CachedPrefix {
    pub blocks: Vec<u32>,
    pub partial: Option<PartialHit>,
}

impl CachedPrefix {
    pub fn num_tokens(&self, block_size: usize) -> usize {
        self.blocks.len() * block_size + self.partial.map_or(0, |p| p.tokens)
    }
}

/// Key of the (empty) parent of a sequence's first block.
const ROOT_KEY: u64 = 0x6865_6172_7468;

pub fn block_key(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

impl BlockManager {
    pub fn new(num_blocks: usize, block_size: usize, enable_prefix_caching: bool) -> Self {
        BlockManager {
            block_size,
            enable_prefix_caching,
            blocks: vec![BlockMeta::default(); num_blocks],
            plain_free: (0..num_blocks as u32).rev().collect(),
            cached_free: BTreeMap::new(),
            cached: HashMap::new(),
            children: HashMap::new(),
            partial_hits: true,
            tick: 0,
        }
    }

    /// Whether a hit may end inside a cached block (on by default). Off where the
    /// model keeps K/V on its device, since the copy it needs is made in host memory.
    pub fn with_partial_hits(mut self, on: bool) -> Self {
        self.partial_hits = on;
        self
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    pub fn num_free(&self) -> usize {
        self.plain_free.len() + self.cached_free.len()
    }

    pub fn num_cached_free(&self) -> usize {
        self.cached_free.len()
    }

    pub fn num_used(&self) -> usize {
        self.num_blocks() - self.num_free()
    }

    pub fn blocks_for_tokens(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.block_size)
    }

    /// Takes the longest cached prefix of `tokens`, leaving at least one token to
    /// compute (its logits are needed): a run of cached full blocks, then the cached
    /// block that continues it furthest, if partial hits are on. Every block returned is
    /// referenced for the caller (the partial one until `release`).
    pub fn take_cached_prefix(&mut self, tokens: &[u32]) -> CachedPrefix {
        let mut hit = CachedPrefix::default();
        if !self.enable_prefix_caching || tokens.is_empty() {
            return hit;
        }
        let usable = &tokens[..tokens.len() - 1];
        let mut parent = ROOT_KEY;
        for chunk in usable.chunks_exact(self.block_size) {
            let key = block_key(parent, chunk);
            let Some(&id) = self.cached.get(&key) else {
                break;
            };
            let meta = &self.blocks[id as usize];
            if meta.parent != parent || meta.tokens != chunk {
                break;
            }
            self.reference(id);
            hit.blocks.push(id);
            parent = key;
        }
        if self.partial_hits {
            let rest = &usable[hit.blocks.len() * self.block_size..];
            hit.partial = self.longest_continuation(parent, rest);
            if let Some(p) = hit.partial {
                self.reference(p.src);
            }
        }
        hit
    }

    /// The child of `parent` whose tokens share the longest start with `rest`.
    fn longest_continuation(&self, parent: u64, rest: &[u32]) -> Option<PartialHit> {
        let common = |id: u32| {
            let block = &self.blocks[id as usize].tokens;
            block.iter().zip(rest).take_while(|(a, b)| a == b).count()
        };
        self.children
            .get(&(parent, *rest.first()?))?
            .iter()
            .map(|&src| PartialHit {
                src,
                tokens: common(src),
            })
            .filter(|p| p.tokens > 0)
            .max_by_key(|p| p.tokens)
    }

    /// Drops the reference `take_cached_prefix` took on a partial hit's block `src`.
    pub fn release(&mut self, src: u32) {
        self.free(&[src]);
    }

    fn reference(&mut self, id: u32) {
        let meta = &mut self.blocks[id as usize];
        if meta.ref_count == 0 {
            if let Some(t) = meta.lru_tick.take() {
                self.cached_free.remove(&t);
            }
        }
        meta.ref_count += 1;
    }

    /// Grows `table` to cover `num_tokens` tokens. All or nothing: on `false` the
    /// table is unchanged.
    pub fn allocate(&mut self, table: &mut Vec<u32>, num_tokens: usize) -> bool {
        let needed = self
            .blocks_for_tokens(num_tokens)
            .saturating_sub(table.len());
        if needed > self.num_free() {
            return false;
        }
        for _ in 0..needed {
            let id = self.pop_free();
            self.blocks[id as usize].ref_count = 1;
            table.push(id);
        }
        true
    }

    fn pop_free(&mut self) -> u32 {
        if let Some(id) = self.plain_free.pop() {
            return id;
        }
        // Evict the least recently freed cached block.
        let (_, id) = self.cached_free.pop_first().expect("num_free was checked");
        let meta = &mut self.blocks[id as usize];
        meta.lru_tick = None;
        if let Some(key) = meta.key.take() {
            if self.cached.get(&key) == Some(&id) {
                self.cached.remove(&key);
            }
            let at = (
                meta.parent,
                meta.tokens.first().copied().unwrap_or_default(),
            );
            if let Some(siblings) = self.children.get_mut(&at) {
                siblings.retain(|&s| s != id);
                if siblings.is_empty() {
                    self.children.remove(&at);
                }
            }
        }
        meta.tokens.clear();
        id
    }

    /// Registers the sequence's full blocks (beyond the first `already`) in the prefix
    /// cache. Returns how many leading blocks are registered now.
    pub fn register_full_blocks(&mut self, table: &[u32], tokens: &[u32], already: usize) -> usize {
        let full = (tokens.len() / self.block_size).min(table.len());
        if !self.enable_prefix_caching || full <= already {
            return already;
        }
        let mut parent = ROOT_KEY;
        for (i, chunk) in tokens.chunks(self.block_size).take(full).enumerate() {
            let key = block_key(parent, chunk);
            if i >= already {
                let id = table[i];
                // A block computed twice (two equal prompts at once) stays private.
                if self.blocks[id as usize].key.is_none() && !self.cached.contains_key(&key) {
                    let meta = &mut self.blocks[id as usize];
                    meta.key = Some(key);
                    meta.parent = parent;
                    meta.tokens = chunk.to_vec();
                    self.cached.insert(key, id);
                    let first = chunk.first().copied().unwrap_or_default();
                    self.children.entry((parent, first)).or_default().push(id);
                }
            }
            parent = key;
        }
        full
    }

    /// Keeps a finished sequence's last, partly filled block findable by a later hit
    /// that ends inside it (its `computed.len() % block_size` leading tokens): the same
    /// prompt sent again, or a next chat turn, then reuses all of `computed`. Only a
    /// block the sequence alone holds, and only where partial hits are on. Call before
    /// `free`.
    pub fn register_tail(&mut self, table: &[u32], computed: &[u32]) {
        let bs = self.block_size;
        let (full, rem) = (computed.len() / bs, computed.len() % bs);
        let Some(&id) = table.get(full) else {
            return;
        };
        if !self.enable_prefix_caching || !self.partial_hits || rem == 0 {
            return;
        }
        let meta = &self.blocks[id as usize];
        if meta.key.is_some() || meta.ref_count != 1 {
            return;
        }
        let parent = computed
            .chunks_exact(bs)
            .fold(ROOT_KEY, |parent, chunk| block_key(parent, chunk));
        let tail = &computed[full * bs..];
        // Never in `cached` (whole blocks only): found through `children` alone.
        let meta = &mut self.blocks[id as usize];
        meta.key = Some(block_key(parent, tail));
        meta.parent = parent;
        meta.tokens = tail.to_vec();
        self.children.entry((parent, tail[0])).or_default().push(id);
    }

    /// Releases a sequence's blocks, tail first so that shared prefixes outlive tails.
    pub fn free(&mut self, table: &[u32]) {
        for &id in table.iter().rev() {
            let meta = &mut self.blocks[id as usize];
            meta.ref_count = meta.ref_count.saturating_sub(1);
            if meta.ref_count > 0 {
                continue;
            }
            if meta.key.is_some() {
                self.tick += 1;
                meta.lru_tick = Some(self.tick);
                self.cached_free.insert(self.tick, id);
            } else {
                self.plain_free.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(n: usize, salt: u32) -> Vec<u32> {
        (0..n as u32).map(|i| i * 7 + salt).collect()
    }

    /// Checks a hit of one whole block (`t[0]`) then 2 tokens of `t[1]` (none where
    /// partial hits are off), and gives it back.
    fn check_hit_then_give_back(
        bm: &mut BlockManager,
        hit: &CachedPrefix,
        t: &[u32],
        partial_hits: bool,
    ) {
        assert_eq!(hit.blocks, t[..1].to_vec());
        let want = partial_hits.then_some(PartialHit {
            src: t[1],
            tokens: 2,
        });
        assert_eq!(hit.partial, want);
        bm.free(&hit.blocks);
        if let Some(p) = hit.partial {
            bm.release(p.src);
        }
    }

    /// Computes `prompt` as a finished sequence would: its blocks allocated, its full
    /// blocks registered, then all freed. Returns its block table.
    fn cache_prompt(bm: &mut BlockManager, prompt: &[u32]) -> Vec<u32> {
        let mut t = Vec::new();
        assert!(bm.allocate(&mut t, prompt.len()));
        bm.register_full_blocks(&t, prompt, 0);
        bm.free(&t);
        t
    }

    #[test]
    fn allocate_is_all_or_nothing() {
        let mut bm = BlockManager::new(4, 4, true);
        let mut t = Vec::new();
        assert!(bm.allocate(&mut t, 10));
        assert_eq!(t.len(), 3);
        let mut u = Vec::new();
        assert!(!bm.allocate(&mut u, 8));
        assert!(u.is_empty());
        assert_eq!(bm.num_free(), 1);
        bm.free(&t);
        assert_eq!(bm.num_free(), 4);
    }

    #[test]
    fn freed_full_blocks_are_reused_by_a_matching_prefix() {
        let mut bm = BlockManager::new(8, 4, true);
        let prompt = toks(10, 1);
        let mut t = Vec::new();
        assert!(bm.allocate(&mut t, prompt.len()));
        assert_eq!(bm.register_full_blocks(&t, &prompt, 0), 2);
        bm.free(&t);
        assert_eq!(bm.num_cached_free(), 2);
        // Same first 8 tokens, different tail: both full blocks hit.
        let mut other = prompt[..8].to_vec();
        other.extend([99, 98, 97]);
        let hits = bm.take_cached_prefix(&other);
        assert_eq!(hits.blocks, t[..2].to_vec());
        assert_eq!(
            hits.partial, None,
            "the prompt's third block was never full"
        );
        assert_eq!(bm.num_cached_free(), 0);
        // A different first block misses everything.
        bm.free(&hits.blocks);
        assert_eq!(bm.take_cached_prefix(&toks(10, 2)), CachedPrefix::default());
    }

    #[test]
    fn a_full_hit_still_leaves_one_token_to_compute() {
        let mut bm = BlockManager::new(8, 4, true);
        let prompt = toks(8, 3);
        let t = cache_prompt(&mut bm, &prompt);
        // The second block would cover the last token: 3 of its tokens are taken.
        let hit = bm.take_cached_prefix(&prompt);
        assert_eq!(hit.blocks, t[..1].to_vec());
        assert_eq!(
            hit.partial,
            Some(PartialHit {
                src: t[1],
                tokens: 3
            })
        );
        assert_eq!(hit.num_tokens(4), 7);
    }

    #[test]
    fn a_hit_ends_inside_the_block_that_continues_it_furthest() {
        let mut bm = BlockManager::new(8, 4, true);
        let first = toks(8, 3);
        // A second prompt with the same first block and a second block that shares 1
        // token with the first prompt's second block.
        let mut second = first[..5].to_vec();
        second.extend([500, 501, 502]);
        for p in [&first, &second] {
            cache_prompt(&mut bm, p);
        }
        assert_eq!(
            bm.num_cached_free(),
            3,
            "the shared first block is cached once"
        );
        // Shares 2 tokens past the first block with `first`, 1 with `second`.
        let mut third = first[..6].to_vec();
        third.extend([900, 901, 902]);
        let hit = bm.take_cached_prefix(&third);
        assert_eq!(hit.blocks.len(), 1);
        let partial = hit.partial.expect("a partial hit");
        assert_eq!(partial.tokens, 2);
        assert_eq!(bm.blocks[partial.src as usize].tokens, first[4..8].to_vec());
        // Both taken blocks are in use, so allocation cannot evict them.
        assert_eq!(bm.num_cached_free(), 1);
        bm.release(partial.src);
        bm.free(&hit.blocks);
        assert_eq!(bm.num_cached_free(), 3);
        // Nothing shared past the first block: no partial hit.
        let mut fourth = first[..4].to_vec();
        fourth.extend([7000, 7001]);
        assert_eq!(bm.take_cached_prefix(&fourth).partial, None);
    }

    #[test]
    fn evicted_or_disallowed_blocks_give_no_partial_hit() {
        let prompt = toks(8, 3);
        let mut query = prompt[..6].to_vec();
        query.push(1234);
        for partial_hits in [true, false] {
            let mut bm = BlockManager::new(2, 4, true).with_partial_hits(partial_hits);
            let t = cache_prompt(&mut bm, &prompt);
            let hit = bm.take_cached_prefix(&query);
            check_hit_then_give_back(&mut bm, &hit, &t, partial_hits);
        }
        // The second block evicted (tails go first): the hit ends at the first block.
        let mut bm = BlockManager::new(2, 4, true);
        let t = cache_prompt(&mut bm, &prompt);
        let mut u = Vec::new();
        assert!(bm.allocate(&mut u, 1));
        assert_eq!(u, vec![t[1]]);
        bm.free(&u);
        let hit = bm.take_cached_prefix(&query);
        assert_eq!((hit.blocks, hit.partial), (t[..1].to_vec(), None));
    }

    #[test]
    fn a_finished_sequence_leaves_its_partly_filled_last_block_findable() {
        let prompt = toks(7, 3);
        let mut longer = prompt.clone();
        longer.extend([1000, 1001]);
        for partial_hits in [true, false] {
            let mut bm = BlockManager::new(4, 4, true).with_partial_hits(partial_hits);
            let mut t = Vec::new();
            assert!(bm.allocate(&mut t, prompt.len()));
            bm.register_full_blocks(&t, &prompt, 0);
            bm.register_tail(&t, &prompt);
            bm.free(&t);
            assert_eq!(bm.num_cached_free(), if partial_hits { 2 } else { 1 });
            // The same prompt again: all but its last token (its logits are needed).
            let hit = bm.take_cached_prefix(&prompt);
            check_hit_then_give_back(&mut bm, &hit, &t, partial_hits);
            if partial_hits {
                // A prompt that goes on past it: all of the first prompt.
                let hit = bm.take_cached_prefix(&longer);
                assert_eq!(hit.num_tokens(4), prompt.len());
            }
        }
        // A block another sequence still holds stays private.
        let mut bm = BlockManager::new(4, 4, true);
        let mut t = Vec::new();
        assert!(bm.allocate(&mut t, prompt.len()));
        bm.register_full_blocks(&t, &prompt, 0);
        bm.reference(t[1]);
        bm.register_tail(&t, &prompt);
        bm.free(&t);
        bm.free(&t[1..]);
        assert_eq!(bm.take_cached_prefix(&prompt).partial, None);
    }

    #[test]
    fn eviction_takes_tails_first_and_forgets_them() {
        let mut bm = BlockManager::new(3, 2, true);
        let prompt = toks(6, 5);
        let t = cache_prompt(&mut bm, &prompt);
        // Need one block: the tail (third) block is evicted, the prefix survives.
        let mut u = Vec::new();
        assert!(bm.allocate(&mut u, 1));
        assert_eq!(u, vec![t[2]]);
        let hit = bm.take_cached_prefix(&prompt);
        assert_eq!((hit.blocks, hit.partial), (t[..2].to_vec(), None));
    }

    #[test]
    fn disabled_caching_never_hits() {
        let mut bm = BlockManager::new(4, 2, false);
        let prompt = toks(5, 1);
        let mut t = Vec::new();
        assert!(bm.allocate(&mut t, 5));
        assert_eq!(bm.register_full_blocks(&t, &prompt, 0), 0);
        bm.free(&t);
        assert_eq!(bm.take_cached_prefix(&prompt), CachedPrefix::default());
        assert_eq!(bm.num_cached_free(), 0);
    }

    #[test]
    fn shared_blocks_stay_used_until_the_last_owner_frees() {
        let mut bm = BlockManager::new(4, 2, true);
        let prompt = toks(5, 9);
        let mut a = Vec::new();
        assert!(bm.allocate(&mut a, 5));
        bm.register_full_blocks(&a, &prompt, 0);
        let mut b = bm.take_cached_prefix(&prompt).blocks;
        assert_eq!(b.len(), 2);
        assert!(bm.allocate(&mut b, 5));
        assert_eq!(bm.num_used(), 4);
        bm.free(&a);
        assert_eq!(bm.num_used(), 3, "a's shared prefix is still b's");
        bm.free(&b);
        assert_eq!(bm.num_used(), 0);
    }
}
