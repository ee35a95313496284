//! Matrix products `y[t, rows] = x[t, cols] · wᵀ` on the GPU: cuBLAS, or for bf16
//! steps of at most `GEMV_MAX_TOKENS` tokens hearth's own bandwidth-bound kernel
//! (`kernels/gemv.cu`), where reading the weights once is the whole cost. Quantized
//! weights: hearth's kernels over the blocks for steps of up to `QGEMV_MAX_TOKENS`
//! (`kernels/gemv_quant.cu`; with bf16 activations, from 2 tokens up to
//! `MMQ_MAX_TOKENS`, tensor-core products where the type has them: `kernels/mmq.cu`),
//! else tiles of rows dequantized for cuBLAS.

use std::ffi::c_void;

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t as Op, cudaDataType,
};
use cudarc::cublas::CudaBlas;
use cudarc::driver::LaunchConfig;

use super::quant_type::{QuantType, QGEMV_MAX_TOKENS};
use super::{cuda_err, Gpu};
use crate::ModelError;

/// Steps of up to this many tokens use the GEMV kernel (one entry point per count).
/// Measured on an H200 against cuBLAS on the 3B's matrices (`cuda_gemv_check`): 1.1 to
/// 1.7 times faster at 1 and 2 tokens, even at 4, slower at 8 (BENCHMARKS.md).
pub const GEMV_MAX_TOKENS: usize = 2;
/// The GEMV kernel's entry points by token count (`t - 1`): plain, and with the SiLU·up
/// epilogue.
const GEMV_NAMES: [&str; GEMV_MAX_TOKENS] = ["gemv_bf16_t1", "gemv_bf16_t2"];
const GEMV_SILU_NAMES: [&str; GEMV_MAX_TOKENS] = ["gemv_bf16_silu_t1", "gemv_bf16_silu_t2"];
/// Weight rows per GEMV block (one warp each; gemv.cu's GEMV_THREADS is 32 times this).
pub(super) const GEMV_ROWS_PER_BLOCK: usize = 8;

/// How a weight matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightKind {
    F32,
    Bf16,
    /// Blocks of a quantized type; the scales start at `meta` (quant_type.rs's layout).
    Quant {
        ty: QuantType,
        meta: u64,
    },
}

/// A row-major `[rows, cols]` weight matrix at a device address.
#[derive(Clone, Copy, Debug)]
pub struct WeightRef {
    pub ptr: u64,
    pub rows: usize,
    pub cols: usize,
    pub kind: WeightKind,
}

/// Elements of the buffer quantized weights are dequantized into for cuBLAS (rows of
/// a matrix at a time: 32 MiB of bf16).
const DEQUANT_TILE: usize = 16 << 20;

/// How the products of one model run.
pub struct Products {
    blas: CudaBlas,
    gemv: bool,
    /// Activations are bf16 (else f32): what a quantized product reads and what its
    /// dequantized tiles are made of.
    act_bf16: bool,
    /// Where quantized weights are dequantized for cuBLAS (made by `reserve_dequant`).
    tile: Option<cudarc::driver::CudaSlice<u8>>,
    /// Steps of up to this many tokens multiply quantized blocks directly
    /// (`QGEMV_MAX_TOKENS`, or fewer with `HEARTH_CUDA_QGEMV_MAX`).
    qgemv_max: usize,
    /// Steps of 2 to this many tokens with bf16 activations use the tensor-core products
    /// where the type has them (`kernels/mmq.cu`): `MMQ_MAX_TOKENS`, less with
    /// `HEARTH_CUDA_MMQ_MAX`, 0 (none) with `HEARTH_CUDA_MMQ=0`.
    mmq_max: usize,
}

impl Products {
    /// cuBLAS on the GPU's stream; the GEMV kernel on unless `HEARTH_CUDA_GEMV=0`.
    pub fn new(gpu: &Gpu, act_bf16: bool) -> Result<Products, ModelError> {
        let blas = CudaBlas::new(gpu.stream.clone())
            .map_err(|e| ModelError::Unsupported(format!("cuBLAS: {e}")))?;
        Ok(Products {
            blas,
            gemv: std::env::var("HEARTH_CUDA_GEMV").as_deref() != Ok("0"),
            act_bf16,
            tile: None,
            qgemv_max: std::env::var("HEARTH_CUDA_QGEMV_MAX")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(QGEMV_MAX_TOKENS, |v: usize| v.min(QGEMV_MAX_TOKENS)),
            mmq_max: if std::env::var("HEARTH_CUDA_MMQ").as_deref() == Ok("0")
                || gpu.capability.0 < 8
            {
                0
            } else {
                std::env::var("HEARTH_CUDA_MMQ_MAX")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .map_or(MMQ_MAX_TOKENS, |v: usize| v.min(MMQ_MAX_TOKENS))
            },
        })
    }

    /// Makes the dequantization tile, for models with quantized weights (before any
    /// step, so that no step allocates and decode steps can be captured).
    pub fn reserve_dequant(&mut self, gpu: &Gpu) -> Result<(), ModelError> {
        if self.tile.is_none() {
            let bytes = DEQUANT_TILE * if self.act_bf16 { 2 } else { 4 };
            let t = gpu.stream.alloc_zeros::<u8>(bytes);
            self.tile = Some(t.map_err(cuda_err("alloc"))?);
        }
        Ok(())
    }

    /// Whether the GEMV kernel is on (what the fused decode step is made of).
    pub(super) fn gemv_on(&self) -> bool {
        self.gemv
    }

    /// Turns the GEMV kernel on or off (off: cuBLAS for every product).
    pub fn set_gemv(&mut self, on: bool) {
        self.gemv = on;
    }

    /// Whether the GEMV kernel takes this product: on, bf16, 1 to `GEMV_MAX_TOKENS`
    /// tokens, rows of whole 16-byte vectors.
    fn gemv_serves(&self, w: WeightRef, t: usize) -> bool {
        self.gemv
            && w.kind == WeightKind::Bf16
            && (1..=GEMV_MAX_TOKENS).contains(&t)
            && w.cols.is_multiple_of(8)
    }

    /// `y[t, w.rows] = x[t, w.cols] · wᵀ (+ y when accumulating)`, y's rows `ldy`
    /// apart (a matrix stored in segments writes each into its columns of y); x is in
    /// the activations' type (for dense weights, the weights' type), y is f32.
    ///
    /// # Safety
    /// `x` must hold `t * w.cols` elements and `y` `(t - 1) * ldy + w.rows` f32, on the
    /// GPU's stream; `w` must point at `rows * cols` weights of its kind.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn matmul(
        &self,
        gpu: &Gpu,
        x: u64,
        w: WeightRef,
        y: u64,
        ldy: usize,
        t: usize,
        accumulate: bool,
    ) -> Result<(), ModelError> {
        if let WeightKind::Quant { ty, meta } = w.kind {
            // Safety: the caller's sizes.
            return unsafe { self.quant_matmul(gpu, x, w, ty, meta, y, ldy, t, accumulate) };
        }
        if self.gemv_serves(w, t) {
            // Safety: the caller's sizes.
            return unsafe { gemv(gpu, x, w, y, ldy, t, accumulate) };
        }
        let ab = if w.kind == WeightKind::Bf16 {
            cudaDataType::CUDA_R_16BF
        } else {
            cudaDataType::CUDA_R_32F
        };
        // Safety: the caller's sizes.
        unsafe { self.gemm(w.ptr, ab, w.rows, w.cols, x, y, ldy, t, accumulate) }
    }

    /// cuBLAS: `y[t, rows] (rows ldy apart) = x[t, cols] · aᵀ (+ y)`, a row-major
    /// `[rows, cols]` of type `ab` at `a`, x of the same type.
    ///
    /// # Safety
    /// As `matmul`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        &self,
        a: u64,
        ab: cudaDataType,
        rows: usize,
        cols: usize,
        x: u64,
        y: u64,
        ldy: usize,
        t: usize,
        accumulate: bool,
    ) -> Result<(), ModelError> {
        let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
        // A column-major product of the row-major matrices. Safety: the caller's sizes;
        // alpha/beta live across the (host-side) call.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                Op::CUBLAS_OP_T,
                Op::CUBLAS_OP_N,
                rows as i32,
                t as i32,
                cols as i32,
                &alpha as *const f32 as *const c_void,
                a as *const c_void,
                ab,
                cols as i32,
                x as *const c_void,
                ab,
                cols as i32,
                &beta as *const f32 as *const c_void,
                y as *mut c_void,
                cudaDataType::CUDA_R_32F,
                ldy as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .map_err(|e| ModelError::Unsupported(format!("cuBLAS gemm: {e}")))
    }

    /// The fused gate/up product of an MLP where the GEMV kernel serves it: `w` is
    /// `[gate rows | up rows]`, and `act[t, w.rows / 2] = SiLU(x · gateᵀ) * (x · upᵀ)`
    /// in bf16 (the bits of `matmul` then llama_ops.cu's `silu_mul`). False, with
    /// nothing launched, where it does not serve (run those two instead).
    ///
    /// # Safety
    /// `x` must hold `t * w.cols` bf16 and `act` `t * w.rows / 2` bf16, on the GPU's
    /// stream; `w` must point at `rows * cols` elements of its type.
    pub unsafe fn matmul_silu(
        &self,
        gpu: &Gpu,
        x: u64,
        w: WeightRef,
        act: u64,
        t: usize,
    ) -> Result<bool, ModelError> {
        if !w.rows.is_multiple_of(2) {
            return Ok(false);
        }
        if let WeightKind::Quant { ty, meta } = w.kind {
            let ffn = w.rows / 2;
            if let Some((mmq, nt, cfg)) = self.mmq_serves(gpu, ty, ffn, t, w.cols, true) {
                let (t32, ffn32, cols) = (t as i32, ffn as i32, w.cols as i32);
                // Safety: the caller's sizes; reads rows * cols weights and t * cols of x,
                // writes t * ffn bf16 of act.
                unsafe {
                    gpu.launch(
                        mmq.silu[nt],
                        cfg,
                        &[&act, &w.ptr, &meta, &x, &t32, &ffn32, &cols],
                    )?
                };
                return Ok(true);
            }
            let Some(cfg) = qgemv_config(gpu, ffn, t, w.cols, self.qgemv_max) else {
                return Ok(false);
            };
            let k = ty.kernels();
            let name = if t == 1 { k.silu_t1 } else { k.silu_t8 };
            let (xb, t32) = (i32::from(self.act_bf16), t as i32);
            let (ffn, cols) = ((w.rows / 2) as i32, w.cols as i32);
            // Safety: the caller's sizes; reads rows * cols weights and t * cols of x,
            // writes t * rows / 2 of act.
            unsafe {
                gpu.launch(
                    name,
                    cfg,
                    &[&act, &w.ptr, &meta, &x, &xb, &t32, &ffn, &cols],
                )?
            };
            return Ok(true);
        }
        if !self.gemv_serves(w, t) {
            return Ok(false);
        }
        let (ffn, cols) = ((w.rows / 2) as i32, w.cols as i32);
        // A warp a row: gate row p and up row p meet in shared memory (pair_sums).
        let cfg = gemv_config(w.rows);
        // Safety: the caller's sizes; the kernel reads rows * cols weights and
        // t * cols of x, and writes t * rows / 2 of act.
        unsafe {
            gpu.launch(
                GEMV_SILU_NAMES[t - 1],
                cfg,
                &[&act, &w.ptr, &x, &ffn, &cols],
            )?
        };
        Ok(true)
    }
}

/// Shared memory two blocks of a quantized product may take together and still share a
/// multiprocessor (an H100 has 228 KiB an SM, 1 KiB a block reserved).
const QGEMV_PAIR_SHARED: usize = 224 << 10;

/// The launch of a quantized product over `rows` rows (a warp a row, blocks resident:
/// two an SM where their shared memory fits, else one), or None where the step is too
/// large for it (the dequantized tiles and cuBLAS take it). Shared memory holds the
/// step's activations quantized (`gpu.qact_bits`) and two floats a 16-element group.
fn qgemv_config(
    gpu: &Gpu,
    rows: usize,
    t: usize,
    cols: usize,
    max_tokens: usize,
) -> Option<LaunchConfig> {
    let shared = t * cols * gpu.qact_bits / 8 + t * cols / 2;
    if !(1..=max_tokens).contains(&t) || shared > gpu.shared_optin {
        return None;
    }
    let per_sm = if 2 * shared <= QGEMV_PAIR_SHARED {
        2
    } else {
        1
    };
    let blocks = rows
        .div_ceil(GEMV_ROWS_PER_BLOCK)
        .min(per_sm * gpu.multiprocessors.max(1));
    Some(LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (32 * GEMV_ROWS_PER_BLOCK as u32, 1, 1),
        shared_mem_bytes: shared as u32,
    })
}

/// A GEMV launch of `warps` warps, `GEMV_ROWS_PER_BLOCK` a block.
pub(super) fn gemv_config(warps: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (warps.div_ceil(GEMV_ROWS_PER_BLOCK) as u32, 1, 1),
        block_dim: (32 * GEMV_ROWS_PER_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// # Safety
/// As `Products::matmul`, with bf16 `w` and `x`, `1 <= t <= GEMV_MAX_TOKENS`.
unsafe fn gemv(
    gpu: &Gpu,
    x: u64,
    w: WeightRef,
    y: u64,
    ldy: usize,
    t: usize,
    accumulate: bool,
) -> Result<(), ModelError> {
    let (rows, cols, acc) = (w.rows as i32, w.cols as i32, i32::from(accumulate));
    let (cfg, ldy) = (gemv_config(w.rows), ldy as i32);
    // Safety: the caller's sizes; the kernel reads rows * cols weights, t * cols of x,
    // and writes t rows of y.
    unsafe {
        gpu.launch(
            GEMV_NAMES[t - 1],
            cfg,
            &[&y, &ldy, &w.ptr, &x, &rows, &cols, &acc],
        )
    }
}

impl Products {
    /// `matmul` for quantized weights: hearth's kernel over the blocks for steps of up
    /// to `QGEMV_MAX_TOKENS` tokens; larger steps dequantize tiles of rows (in the
    /// activations' type) and multiply each with cuBLAS.
    ///
    /// # Safety
    /// As `matmul`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn quant_matmul(
        &self,
        gpu: &Gpu,
        x: u64,
        w: WeightRef,
        ty: QuantType,
        meta: u64,
        y: u64,
        ldy: usize,
        t: usize,
        accumulate: bool,
    ) -> Result<(), ModelError> {
        let k = ty.kernels();
        let (xb, t32, ldy32) = (i32::from(self.act_bf16), t as i32, ldy as i32);
        let (rows, cols, acc) = (w.rows as i32, w.cols as i32, i32::from(accumulate));
        if let Some((mmq, nt, cfg)) = self.mmq_serves(gpu, ty, w.rows, t, w.cols, false) {
            // Safety: the caller's sizes; reads rows * cols weights and t * cols of x,
            // writes t rows of y.
            return unsafe {
                gpu.launch(
                    mmq.plain[nt],
                    cfg,
                    &[&y, &ldy32, &w.ptr, &meta, &x, &t32, &rows, &cols, &acc],
                )
            };
        }
        if let Some(cfg) = qgemv_config(gpu, w.rows, t, w.cols, self.qgemv_max) {
            let name = if t == 1 { k.t1 } else { k.t8 };
            // Safety: the caller's sizes; reads rows * cols weights and t * cols of x,
            // writes t rows of y.
            return unsafe {
                gpu.launch(
                    name,
                    cfg,
                    &[&y, &ldy32, &w.ptr, &meta, &x, &xb, &t32, &rows, &cols, &acc],
                )
            };
        }
        let tile = self
            .tile
            .as_ref()
            .ok_or_else(|| ModelError::Unsupported("quantized product: no dequant tile".into()))?;
        let tile_ptr = {
            use cudarc::driver::DevicePtr;
            tile.device_ptr(&gpu.stream).0
        };
        let (ab, elem) = if self.act_bf16 {
            (cudaDataType::CUDA_R_16BF, 2)
        } else {
            (cudaDataType::CUDA_R_32F, 4)
        };
        let tile_rows = (tile.len() / elem / w.cols).max(1);
        let null = 0u64;
        let mut r0 = 0;
        while r0 < w.rows {
            let n = tile_rows.min(w.rows - r0);
            let (r0_32, n32, cfg) = (r0 as i32, n as i32, dequant_config(n, w.cols));
            // Safety: the tile holds n * cols elements of the activations' type; the
            // kernel reads rows r0..r0 + n of the matrix.
            unsafe {
                gpu.launch(
                    k.dequant,
                    cfg,
                    &[&tile_ptr, &xb, &w.ptr, &meta, &null, &r0_32, &n32, &cols],
                )?;
                self.gemm(
                    tile_ptr,
                    ab,
                    n,
                    w.cols,
                    x,
                    y + 4 * r0 as u64,
                    ldy,
                    t,
                    accumulate,
                )?;
            }
            r0 += n;
        }
        Ok(())
    }
}

/// Steps of up to this many tokens may take the tensor-core products (`HEARTH_CUDA_MMQ_MAX`
/// lowers it); above, dequantized tiles and cuBLAS. Measured on an H100 against those
/// (`cuda_quant_check`, 3B shapes, Q4_K): with 16 tokens a block a product is as fast at
/// 64 tokens and faster below; with 8 a block (where 16 tokens' activations do not fit in
/// shared memory: 8192 columns) it is faster up to 32 and 2.3x slower at 64; the
/// gate/up product with its SiLU·up is 2.6x faster at 64. Served at concurrency 128 (128
/// tokens a step), gate/up on the tensor cores made the step slower (TPOT 41.97 against
/// 39.07 ms), so 64 it is.
pub const MMQ_MAX_TOKENS: usize = 64;
/// Plain products: up to 64 tokens with 16 a block, 32 with 8.
pub const MMQ_PLAIN_MAX_TOKENS: [usize; 2] = [32, 64];
/// Warps of a tensor-core product's block (`MMQ_WARPS` in kernels/mmq.cu).
const MMQ_WARPS: usize = 8;

impl Products {
    /// The tensor-core product's kernels and launch for `rows` rows (16 a tile; a block
    /// takes pairs of tiles in turn: 32 rows, or with the SiLU·up epilogue `rows` is the
    /// ffn width and a pair is 16 gate and 16 up rows) of `cols` columns, where it
    /// serves: bf16 activations, 2 to `mmq_max` tokens (fewer for plain products:
    /// `MMQ_PLAIN_MAX_TOKENS`), a type that has it, whole tiles and 64-column units, and
    /// shared memory for a block's tokens. Returns the kernel index (8-token tiles a
    /// block, less one): two above 8 tokens where they fit, else one.
    fn mmq_serves(
        &self,
        gpu: &Gpu,
        ty: QuantType,
        rows: usize,
        t: usize,
        cols: usize,
        silu: bool,
    ) -> Option<(super::quant_type::MmqKernels, usize, LaunchConfig)> {
        if !self.act_bf16
            || !(2..=self.mmq_max).contains(&t)
            || !rows.is_multiple_of(16)
            || !cols.is_multiple_of(64)
        {
            return None;
        }
        let kernels = ty.kernels().mmq?;
        // kernels/mmq.cu: a block's activations (rows of mmq_x_stride bf16), each
        // 32-column group's sums for 8 nt tokens, the warps' partial sums.
        let stride = cols.div_ceil(64) * 64 + 32;
        let shared = |nt: usize| {
            2 * t.min(8 * nt) * stride + 4 * 8 * nt * (cols / 32) + 4 * MMQ_WARPS * 2 * nt * 4 * 32
        };
        let nt = if t > 8 && shared(2) <= gpu.shared_optin {
            2
        } else {
            1
        };
        let shared = shared(nt);
        if shared > gpu.shared_optin || (!silu && t > MMQ_PLAIN_MAX_TOKENS[nt - 1]) {
            return None;
        }
        let per_sm = if 2 * shared <= QGEMV_PAIR_SHARED {
            2
        } else {
            1
        };
        // Each block's tokens their own blocks, as many together as stay resident.
        let pairs = if silu { rows / 16 } else { rows.div_ceil(32) };
        let slices = t.div_ceil(8 * nt);
        let blocks = pairs
            .min((per_sm * gpu.multiprocessors.max(1)).div_ceil(slices))
            .max(1);
        Some((
            kernels,
            nt - 1,
            LaunchConfig {
                grid_dim: (blocks as u32, slices as u32, 1),
                block_dim: (32 * MMQ_WARPS as u32, 1, 1),
                shared_mem_bytes: shared as u32,
            },
        ))
    }
}

/// A row dequantization of `rows` rows: a thread a 32-weight unit, grid-strided.
fn dequant_config(rows: usize, cols: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((rows * cols / 32).div_ceil(256).clamp(1, 4096) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Rows `ids[0..n]` of a quantized matrix, dequantized to f32 into `out` (`[n, cols]`):
/// the token-embedding lookup.
///
/// # Safety
/// `ids` must hold `n` row indices below `w.rows`, `out` `n * w.cols` f32.
pub unsafe fn dequant_rows(
    gpu: &Gpu,
    w: WeightRef,
    ids: u64,
    n: usize,
    out: u64,
) -> Result<(), ModelError> {
    let WeightKind::Quant { ty, meta } = w.kind else {
        return Err(ModelError::Unsupported(
            "dequant_rows: not quantized".into(),
        ));
    };
    let (f32_out, zero, n32, cols) = (0i32, 0i32, n as i32, w.cols as i32);
    let cfg = dequant_config(n, w.cols);
    // Safety: the caller's sizes.
    unsafe {
        gpu.launch(
            ty.kernels().dequant,
            cfg,
            &[&out, &f32_out, &w.ptr, &meta, &ids, &zero, &n32, &cols],
        )
    }
}
