//! The launches of `kernels/gemv_fused.cu`: a decode step of 1 or 2 tokens on bf16
//! weights in five kernels a layer (q/k/v with RoPE, attention, o, gate/up with SiLU,
//! down), RMSNorm folded into the products around it. At batch 1 a step is bound by
//! its kernel boundaries more than by its bytes (BENCHMARKS.md).

use super::product::{gemv_config, WeightRef, GEMV_MAX_TOKENS, GEMV_ROWS_PER_BLOCK};
use super::{Gpu, KernelArg};
use crate::ModelError;

const RESIDUAL_NAMES: [&str; GEMV_MAX_TOKENS] = ["gemv_bf16_residual_t1", "gemv_bf16_residual_t2"];
const QKV_NAMES: [&str; GEMV_MAX_TOKENS] = ["gemv_bf16_qkv_t1", "gemv_bf16_qkv_t2"];
/// The same into f16 pools.
const QKV_F16_NAMES: [&str; GEMV_MAX_TOKENS] = ["gemv_bf16_qkv_t1_kvf16", "gemv_bf16_qkv_t2_kvf16"];
const SILU_NORM_NAMES: [&str; GEMV_MAX_TOKENS] =
    ["gemv_bf16_silu_norm_t1", "gemv_bf16_silu_norm_t2"];

/// Where a folded RMSNorm's input lies: `xw` = bf16(x * the norm's weights), `t` rows,
/// and each row's sum of squares in `nparts` partial sums (`parts[tok * nparts ..]`).
#[derive(Clone, Copy)]
pub(super) struct NormIn {
    pub xw: u64,
    pub parts: u64,
    pub nparts: usize,
}

/// Partial sums a residual product of `rows` rows leaves per token (one a block).
pub(super) fn residual_parts(rows: usize) -> usize {
    rows.div_ceil(GEMV_ROWS_PER_BLOCK)
}

fn launch_t(names: &[&'static str; GEMV_MAX_TOKENS], t: usize) -> Result<&'static str, ModelError> {
    names
        .get(t.wrapping_sub(1))
        .copied()
        .ok_or_else(|| ModelError::BadBatch(format!("fused step of {t} tokens")))
}

/// `xw`/`parts` of `x`'s `t` rows (the embedding) for the first layer's norm `w`.
///
/// # Safety
/// `x` holds `t * width` f32, `w` `width` f32; `xw` room for `t * width` bf16 and
/// `parts` for `t` f32.
pub(super) unsafe fn norm_prep(
    gpu: &Gpu,
    out: NormIn,
    x: u64,
    w: u64,
    width: usize,
    t: usize,
) -> Result<(), ModelError> {
    let cfg = cudarc::driver::LaunchConfig {
        grid_dim: (t as u32, 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    };
    let width = width as i32;
    // Safety: the caller's sizes.
    unsafe { gpu.launch("norm_prep", cfg, &[&out.xw, &out.parts, &x, &w, &width]) }
}

/// `y[t, w.rows] += x · wᵀ` (the residual stream, rows `w.rows` apart), then `out` for
/// the next norm, whose weights are `norm_w`; `out.nparts` is `residual_parts(w.rows)`.
///
/// # Safety
/// bf16 `w`; `x` holds `t * w.cols` bf16, `y` and `norm_w` as above, `out.xw` room for
/// `t * w.rows` bf16 and `out.parts` for `t * out.nparts` f32.
pub(super) unsafe fn residual(
    gpu: &Gpu,
    y: u64,
    w: WeightRef,
    x: u64,
    t: usize,
    norm_w: u64,
    out: NormIn,
) -> Result<(), ModelError> {
    let name = launch_t(&RESIDUAL_NAMES, t)?;
    let (rows, cols) = (w.rows as i32, w.cols as i32);
    let args: [&dyn KernelArg; 8] = [&y, &w.ptr, &x, &rows, &cols, &norm_w, &out.xw, &out.parts];
    // Safety: the caller's sizes.
    unsafe { gpu.launch(name, gemv_config(w.rows), &args) }
}

/// `act = SiLU(gate) * up` of the normed `x`'s gate/up product (`w`: gate rows, then
/// as many up rows).
///
/// # Safety
/// bf16 `w` of an even row count; `x` as `NormIn` says over `w.cols`; `act` room for
/// `t * w.rows / 2` bf16.
pub(super) unsafe fn silu_norm(
    gpu: &Gpu,
    act: u64,
    w: WeightRef,
    x: NormIn,
    t: usize,
    eps: f32,
) -> Result<(), ModelError> {
    let name = launch_t(&SILU_NORM_NAMES, t)?;
    let (ffn, cols, np) = ((w.rows / 2) as i32, w.cols as i32, x.nparts as i32);
    let args: [&dyn KernelArg; 8] = [&act, &w.ptr, &x.xw, &ffn, &cols, &x.parts, &np, &eps];
    // A warp a row (gate, then up: pair_sums in gemv.cu). Safety: the caller's sizes.
    unsafe { gpu.launch(name, gemv_config(w.rows), &args) }
}

/// The q/k/v product's destinations and what RoPE needs (`qkv_finish`'s arguments).
pub(super) struct QkvOut {
    pub q: u64,
    pub k_pool: u64,
    pub v_pool: u64,
    /// The pools hold f16, not f32.
    pub kv_f16: bool,
    /// `[(heads + 2 kv heads) * head_dim]` f32, or 0.
    pub bias: u64,
    pub positions: u64,
    pub slots: u64,
    pub inv_freq: u64,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub neox: bool,
}

/// q/k/v of the normed `x` with bias and RoPE, q into `out.q` and k, v into the pools.
///
/// # Safety
/// bf16 `w` of `(heads + 2 kv heads) * head_dim` rows, even `head_dim`; `x` as `NormIn`
/// says over `w.cols`; `out`'s buffers sized for `t` tokens, slots inside the pools.
pub(super) unsafe fn qkv(
    gpu: &Gpu,
    w: WeightRef,
    x: NormIn,
    t: usize,
    eps: f32,
    out: &QkvOut,
) -> Result<(), ModelError> {
    let name = launch_t(
        if out.kv_f16 {
            &QKV_F16_NAMES
        } else {
            &QKV_NAMES
        },
        t,
    )?;
    let pairs = (out.num_heads + 2 * out.num_kv_heads) * out.head_dim / 2;
    let (np, cols) = (x.nparts as i32, w.cols as i32);
    let (nh, nkv, hd) = (
        out.num_heads as i32,
        out.num_kv_heads as i32,
        out.head_dim as i32,
    );
    let neox = i32::from(out.neox);
    let args: [&dyn KernelArg; 17] = [
        &out.q,
        &out.k_pool,
        &out.v_pool,
        &w.ptr,
        &x.xw,
        &x.parts,
        &np,
        &cols,
        &eps,
        &out.bias,
        &out.positions,
        &out.slots,
        &out.inv_freq,
        &nh,
        &nkv,
        &hd,
        &neox,
    ];
    // Safety: the caller's sizes. A warp a row, both rows of a pair in one block
    // (pair_sums in gemv.cu).
    unsafe { gpu.launch(name, gemv_config(2 * pairs), &args) }
}
