//! Paged attention on the GPU: the same varlen contract as the CPU kernel
//! (`attention::cpu::paged_attention`), so the two can be checked against each
//! other on any batch.

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};

use super::{cuda_err, Gpu, KernelArg};
use crate::attention::{AttnMeta, AttnShape};
use crate::{BatchInput, ModelError};

/// Threads per block; the kernels' TILE.
const THREADS: u32 = 128;
/// Largest query-head group the grouped kernel serves (its MAX_GROUP).
const MAX_GROUP: usize = 8;

/// Largest query-head group the split kernel serves (its SPLIT_MAX_GROUP).
const SPLIT_MAX_GROUP: usize = 8;
/// Warps per block of the split kernel (its SPLIT_WARPS).
const SPLIT_WARPS: usize = 4;

/// Which kernel: one block per query head, one per KV head serving its whole group
/// (each K/V row read once per group), or one per (KV head, key range) with a warp
/// per key (coalesced rows, ranges merged by the last block of each; head_dim 64, 128
/// or 256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    PerHead,
    Grouped,
    Split,
}

/// A batch's block tables and per-token facts on the device, as raw pointers into
/// buffers that outlive the launches (owned here when made by `upload`).
pub struct DeviceBatch {
    _storage: Option<CudaSlice<i32>>,
    /// `[num_seqs, max_blocks]` i32, row-major, padded.
    pub block_tables: u64,
    pub max_blocks: usize,
    /// `[num_tokens]` i32 each.
    pub token_seq: u64,
    pub positions: u64,
    pub num_tokens: usize,
    /// Keys the longest row may attend to: what the key splits are sized by.
    pub longest: usize,
}

impl DeviceBatch {
    /// Host arrays of a batch in one buffer: block tables (`max_blocks` wide), then
    /// token_seq, then positions. Returns the buffer and `max_blocks`.
    pub fn host_arrays(batch: &BatchInput, meta: &AttnMeta, max_blocks: usize) -> Vec<i32> {
        let n = batch.tokens.len();
        let mut v = vec![0i32; batch.seqs.len() * max_blocks + 2 * n];
        for (s, seq) in batch.seqs.iter().enumerate() {
            for (i, &b) in seq.block_table.iter().take(max_blocks).enumerate() {
                v[s * max_blocks + i] = b as i32;
            }
        }
        let at = batch.seqs.len() * max_blocks;
        for (i, &s) in meta.token_seq.iter().enumerate() {
            v[at + i] = s as i32;
        }
        for (i, &p) in batch.positions.iter().enumerate() {
            v[at + n + i] = p as i32;
        }
        v
    }

    /// The widest block table of the batch.
    pub fn widest(batch: &BatchInput) -> usize {
        batch
            .seqs
            .iter()
            .map(|s| s.block_table.len())
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// Pointers into `host_arrays`' layout at device address `base`.
    pub fn at(base: u64, batch: &BatchInput, max_blocks: usize, longest: usize) -> DeviceBatch {
        let at = (batch.seqs.len() * max_blocks) as u64;
        let n = batch.tokens.len() as u64;
        DeviceBatch {
            _storage: None,
            block_tables: base,
            max_blocks,
            token_seq: base + 4 * at,
            positions: base + 4 * (at + n),
            num_tokens: batch.tokens.len(),
            longest,
        }
    }

    /// Uploads the batch's arrays to a buffer of their own.
    pub fn upload(gpu: &Gpu, batch: &BatchInput, meta: &AttnMeta) -> Result<Self, ModelError> {
        let max_blocks = Self::widest(batch);
        let host = Self::host_arrays(batch, meta, max_blocks);
        let storage = gpu.stream.memcpy_stod(&host).map_err(cuda_err("copy"))?;
        let longest = batch
            .positions
            .iter()
            .map(|&p| p as usize + 1)
            .max()
            .unwrap_or(0);
        let base = storage.device_ptr(&gpu.stream).0;
        let mut b = Self::at(base, batch, max_blocks, longest);
        b._storage = Some(storage);
        Ok(b)
    }
}

/// Where a launch reads and writes: raw device pointers of buffers that outlive the
/// launch. `out` is f32, or bf16 when `out_bf16` (what a bf16 matrix product reads next).
#[derive(Clone, Copy)]
pub struct AttnBuffers {
    pub out: u64,
    pub out_bf16: bool,
    pub q: u64,
    pub k_pool: u64,
    pub v_pool: u64,
    /// The pools hold f16 (`KvDtype::F16`), not f32.
    pub kv_f16: bool,
    /// Scratch of the split kernel's partial sums (`part_len` floats); when it is too
    /// small for the launch, one is allocated for it (not inside a graph capture).
    pub part: u64,
    pub part_len: usize,
}

/// Floats of split-kernel scratch a launch over `batch` needs (0 for one split).
pub fn part_len(gpu: &Gpu, batch: &DeviceBatch, shape: &AttnShape) -> usize {
    split_plan(gpu, batch, shape).1
}

/// Floats a split's partial sums take past its head_dim weighted sums: the running max,
/// the denominator and 2 of padding (PART_STRIDE in paged_attention_split.cu: each
/// split's sums 16-byte aligned for the merge's float4 loads).
const PART_EXTRA: usize = 4;

/// Key splits per (row, KV head) for the split kernel, and the scratch floats they need.
fn split_plan(gpu: &Gpu, batch: &DeviceBatch, shape: &AttnShape) -> (usize, usize) {
    let longest = shape.window.map_or(batch.longest, |w| batch.longest.min(w));
    let pairs = batch.num_tokens * shape.num_kv_heads;
    let splits = split_count(gpu.multiprocessors, pairs, longest, shape.head_dim);
    let part = if splits > 1 {
        batch.num_tokens * shape.num_heads * splits * (shape.head_dim + PART_EXTRA)
    } else {
        0
    };
    (splits, part)
}

/// Splits of `pairs` (row, KV head) pairs of at most `longest` keys: enough blocks to
/// fill the GPU twice over, no split shorter than 32 keys, and at most 2 * head_dim
/// (the merge keeps a weight and a max per split in the fold's shared memory,
/// SPLIT_WARPS * group * (head_dim + 2) floats). Measured on an H100 (3B, batch 1):
/// aiming at 1 or 4 blocks an SM, or splits of at least 16, 64 or 128 keys, was no
/// faster (BENCHMARKS.md).
fn split_count(multiprocessors: usize, pairs: usize, longest: usize, head_dim: usize) -> usize {
    (2 * multiprocessors)
        .div_ceil(pairs.max(1))
        .clamp(1, longest.div_ceil(32).max(1))
        .min(2 * head_dim)
}

/// An element of a GPU K/V pool: f32, or f16 as its bits (u16).
pub trait PoolElem: cudarc::driver::DeviceRepr {
    const F16: bool;
}

impl PoolElem for f32 {
    const F16: bool = false;
}

impl PoolElem for u16 {
    const F16: bool = true;
}

/// Launches the kernel: `out` and `q` are `[T, num_heads, head_dim]`, the pools one
/// layer's `[num_blocks, block_size, num_kv_heads, head_dim]` of f32 or f16 bits.
#[allow(clippy::too_many_arguments)]
pub fn launch<K: PoolElem>(
    gpu: &Gpu,
    out: &mut CudaSlice<f32>,
    q: &CudaSlice<f32>,
    k_pool: &CudaSlice<K>,
    v_pool: &CudaSlice<K>,
    block_size: usize,
    batch: &DeviceBatch,
    shape: AttnShape,
    variant: Variant,
) -> Result<(), ModelError> {
    let want = batch.num_tokens * shape.num_heads * shape.head_dim;
    if q.len() != want || out.len() != want {
        return Err(ModelError::BadBatch(format!(
            "GPU attention: q {} / out {} floats, {want} expected",
            q.len(),
            out.len()
        )));
    }
    let st = &gpu.stream;
    let bufs = AttnBuffers {
        out: out.device_ptr_mut(st).0,
        out_bf16: false,
        q: q.device_ptr(st).0,
        k_pool: k_pool.device_ptr(st).0,
        v_pool: v_pool.device_ptr(st).0,
        kv_f16: K::F16,
        part: 0,
        part_len: 0,
    };
    // Safety: the sizes of q and out were checked above; the pools are the caller's.
    unsafe { launch_raw(gpu, bufs, block_size, batch, shape, variant) }
}

/// `launch` on raw pointers.
///
/// # Safety
/// `out` and `q` must hold `batch.num_tokens * num_heads * head_dim` elements and the
/// pools every slot the batch's block tables name, all on `gpu`'s stream.
pub unsafe fn launch_raw(
    gpu: &Gpu,
    bufs: AttnBuffers,
    block_size: usize,
    batch: &DeviceBatch,
    shape: AttnShape,
    variant: Variant,
) -> Result<(), ModelError> {
    let AttnShape {
        num_heads,
        num_kv_heads,
        head_dim,
        scale,
        window,
        softcap,
    } = shape;
    if num_kv_heads == 0 || num_heads % num_kv_heads != 0 || head_dim == 0 || head_dim > 512 {
        return Err(ModelError::BadBatch(format!(
            "GPU attention: {num_heads} heads over {num_kv_heads} KV heads of {head_dim}"
        )));
    }
    if batch.num_tokens == 0 {
        return Ok(());
    }
    let group = num_heads / num_kv_heads;
    let (nh, nkv, hd, bs, mb) = (
        num_heads as i32,
        num_kv_heads as i32,
        head_dim as i32,
        block_size as i32,
        batch.max_blocks as i32,
    );
    let win = window.map_or(0, |w| w as i32);
    let cap = softcap.unwrap_or(0.0);
    let out_bf16 = i32::from(bufs.out_bf16);
    // The split kernel serves head_dim 64, 128 and 256 and groups up to its
    // SPLIT_MAX_GROUP; other shapes take the grouped (or per-head) kernel.
    let split_name = match (head_dim, bufs.kv_f16) {
        (64, false) => Some("paged_attention_split_d2"),
        (128, false) => Some("paged_attention_split_d4"),
        (256, false) => Some("paged_attention_split_d8"),
        (64, true) => Some("paged_attention_split_d2_kvf16"),
        (128, true) => Some("paged_attention_split_d4_kvf16"),
        (256, true) => Some("paged_attention_split_d8_kvf16"),
        _ => None,
    }
    .filter(|_| group <= SPLIT_MAX_GROUP);
    let variant = match (variant, split_name) {
        (Variant::Split, None) if group <= MAX_GROUP => Variant::Grouped,
        (Variant::Split, None) => Variant::PerHead,
        (v, _) => v,
    };
    if let (Variant::Split, Some(name)) = (variant, split_name) {
        let (splits, need) = split_plan(gpu, batch, &shape);
        // The fold's rows in shared memory (a warp's sums, max and denominator a head);
        // `part` rows are head_dim + PART_EXTRA.
        let fold_row = head_dim + 2;
        let mut part = if need > bufs.part_len {
            Some(gpu.stream.alloc::<f32>(need).map_err(cuda_err("alloc"))?)
        } else {
            None
        };
        let part_ptr = match part.as_mut() {
            Some(p) => p.device_ptr_mut(&gpu.stream).0,
            None => bufs.part,
        };
        let cfg = LaunchConfig {
            grid_dim: ((batch.num_tokens * num_kv_heads * splits) as u32, 1, 1),
            block_dim: (32 * SPLIT_WARPS as u32, 1, 1),
            shared_mem_bytes: (SPLIT_WARPS * group * fold_row * 4) as u32,
        };
        let s32 = splits as i32;
        let (tickets, ticket_count) = gpu.attn_tickets();
        let pairs = batch.num_tokens * num_kv_heads;
        if splits > 1 && pairs > ticket_count {
            // split_plan splits only batches of fewer pairs than there are tickets.
            return Err(ModelError::BadBatch(format!(
                "GPU attention: {pairs} split (row, KV head) pairs, {ticket_count} tickets"
            )));
        }
        let args: [&dyn KernelArg; 18] = [
            &bufs.out,
            &out_bf16,
            &part_ptr,
            &bufs.q,
            &bufs.k_pool,
            &bufs.v_pool,
            &batch.block_tables,
            &batch.token_seq,
            &batch.positions,
            &nh,
            &nkv,
            &bs,
            &mb,
            &scale,
            &win,
            &cap,
            &s32,
            &tickets,
        ];
        // Safety: the caller's contract; part holds T * heads * splits * (head_dim +
        // PART_EXTRA) floats (split_plan), the tickets an int for each pair (checked
        // above).
        unsafe { gpu.launch(name, cfg, &args) }?;
        // Freed in stream order, after the kernels that read it.
        drop(part);
        return Ok(());
    }
    let (name, blocks, floats) = match variant {
        Variant::PerHead => (
            if bufs.kv_f16 {
                "paged_attention_f32_kvf16"
            } else {
                "paged_attention_f32"
            },
            num_heads,
            head_dim + THREADS as usize,
        ),
        Variant::Grouped if group <= MAX_GROUP => (
            if bufs.kv_f16 {
                "paged_attention_gqa_f32_kvf16"
            } else {
                "paged_attention_gqa_f32"
            },
            num_kv_heads,
            group * (head_dim + THREADS as usize),
        ),
        _ => {
            return Err(ModelError::BadBatch(format!(
                "GPU attention: groups of {group} query heads (at most {MAX_GROUP})"
            )))
        }
    };
    let cfg = LaunchConfig {
        grid_dim: ((batch.num_tokens * blocks) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: (floats * 4) as u32,
    };
    let args: [&dyn KernelArg; 16] = [
        &bufs.out,
        &bufs.q,
        &bufs.k_pool,
        &bufs.v_pool,
        &batch.block_tables,
        &batch.token_seq,
        &batch.positions,
        &nh,
        &nkv,
        &hd,
        &bs,
        &mb,
        &scale,
        &win,
        &cap,
        &out_bf16,
    ];
    // Safety: the arguments match the kernel's signature, the batch was validated by
    // `AttnMeta::new` against the pool, and the caller vouches for the buffers.
    unsafe { gpu.launch(name, cfg, &args) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_count;

    #[test]
    fn splits_fill_the_gpu_within_the_merge_buffer() {
        // 3B at batch 1 (8 KV heads) on an H100's 132 multiprocessors: the 1024-key
        // capacity allows 32 splits, the GPU asks for 33.
        assert_eq!(split_count(132, 8, 1024, 128), 32);
        assert_eq!(split_count(132, 8, 640, 128), 20);
        // 32 rows: two splits; 128 rows: one.
        assert_eq!(split_count(132, 256, 1024, 128), 2);
        assert_eq!(split_count(132, 1024, 1024, 128), 1);
        // Short rows are not split below 32 keys.
        assert_eq!(split_count(132, 1, 10, 64), 1);
        // One pair of a long row: capped by the merge's buffer, 2 * head_dim.
        assert_eq!(split_count(132, 1, 100_000, 64), 128);
        assert_eq!(split_count(200, 1, 100_000, 64), 128);
        assert_eq!(split_count(132, 1, 100_000, 128), 256);
    }
}
