//! Paged attention on the GPU: the same varlen contract as the CPU kernel
//! (`attention::cpu::paged_attention`), so the two can be checked against each
//! other on any batch.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::{cuda_err, Gpu};
use crate::attention::{AttnMeta, AttnShape};
use crate::{BatchInput, ModelError};

/// Threads per block; the kernels' TILE.
const THREADS: u32 = 128;
/// Largest query-head group the grouped kernel serves (its MAX_GROUP).
const MAX_GROUP: usize = 8;

/// Which kernel: one block per query head, or one per KV head serving its whole
/// group (each K/V row read once per group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    PerHead,
    Grouped,
}

/// A batch's block tables and per-token facts on the device.
pub struct DeviceBatch {
    pub block_tables: CudaSlice<i32>,
    pub max_blocks: usize,
    pub token_seq: CudaSlice<i32>,
    pub positions: CudaSlice<i32>,
    pub num_tokens: usize,
}

impl DeviceBatch {
    pub fn upload(gpu: &Gpu, batch: &BatchInput, meta: &AttnMeta) -> Result<Self, ModelError> {
        let max_blocks = batch
            .seqs
            .iter()
            .map(|s| s.block_table.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut tables = vec![0i32; batch.seqs.len() * max_blocks];
        for (s, seq) in batch.seqs.iter().enumerate() {
            for (i, &b) in seq.block_table.iter().enumerate() {
                tables[s * max_blocks + i] = b as i32;
            }
        }
        let seqs: Vec<i32> = meta.token_seq.iter().map(|&s| s as i32).collect();
        let pos: Vec<i32> = batch.positions.iter().map(|&p| p as i32).collect();
        let up = |v: &[i32]| gpu.stream.memcpy_stod(v).map_err(cuda_err("copy"));
        Ok(DeviceBatch {
            block_tables: up(&tables)?,
            max_blocks,
            token_seq: up(&seqs)?,
            positions: up(&pos)?,
            num_tokens: batch.tokens.len(),
        })
    }
}

/// Launches the kernel: `out` and `q` are `[T, num_heads, head_dim]`, the pools one
/// layer's `[num_blocks, block_size, num_kv_heads, head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    gpu: &Gpu,
    out: &mut CudaSlice<f32>,
    q: &CudaSlice<f32>,
    k_pool: &CudaSlice<f32>,
    v_pool: &CudaSlice<f32>,
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
    let want = batch.num_tokens * num_heads * head_dim;
    if q.len() != want || out.len() != want {
        return Err(ModelError::BadBatch(format!(
            "GPU attention: q {} / out {} floats, {want} expected",
            q.len(),
            out.len()
        )));
    }
    if batch.num_tokens == 0 {
        return Ok(());
    }
    let group = num_heads / num_kv_heads;
    let (name, blocks, floats) = match variant {
        Variant::PerHead => (
            "paged_attention_f32",
            num_heads,
            head_dim + THREADS as usize,
        ),
        Variant::Grouped if group <= MAX_GROUP => (
            "paged_attention_gqa_f32",
            num_kv_heads,
            group * (head_dim + THREADS as usize),
        ),
        Variant::Grouped => {
            return Err(ModelError::BadBatch(format!(
                "GPU attention: groups of {group} query heads (at most {MAX_GROUP})"
            )))
        }
    };
    let f = gpu.function(name)?;
    let cfg = LaunchConfig {
        grid_dim: ((batch.num_tokens * blocks) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: (floats * 4) as u32,
    };
    let (nh, nkv, hd, bs, mb) = (
        num_heads as i32,
        num_kv_heads as i32,
        head_dim as i32,
        block_size as i32,
        batch.max_blocks as i32,
    );
    let win = window.map_or(0, |w| w as i32);
    let cap = softcap.unwrap_or(0.0);
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(out)
        .arg(q)
        .arg(k_pool)
        .arg(v_pool)
        .arg(&batch.block_tables)
        .arg(&batch.token_seq)
        .arg(&batch.positions)
        .arg(&nh)
        .arg(&nkv)
        .arg(&hd)
        .arg(&bs)
        .arg(&mb)
        .arg(&scale)
        .arg(&win)
        .arg(&cap);
    // Safety: the arguments match the kernel's signature, the batch was validated by
    // `AttnMeta::new` against the pool, and the buffers' sizes were checked above.
    unsafe { b.launch(cfg) }.map_err(cuda_err("launch"))?;
    Ok(())
}
