//! Matrix products `y[t, rows] = x[t, cols] · wᵀ` on the GPU: cuBLAS, or for bf16
//! steps of at most `GEMV_MAX_TOKENS` tokens hearth's own bandwidth-bound kernel
//! (`kernels/gemv.cu`), where reading the weights once is the whole cost.

use std::ffi::c_void;

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t as Op, cudaDataType,
};
use cudarc::cublas::CudaBlas;
use cudarc::driver::LaunchConfig;

use super::Gpu;
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
const GEMV_ROWS_PER_BLOCK: usize = 8;

/// A row-major `[rows, cols]` weight matrix at a device address.
#[derive(Clone, Copy, Debug)]
pub struct WeightRef {
    pub ptr: u64,
    pub rows: usize,
    pub cols: usize,
    pub bf16: bool,
}

/// How the products of one model run.
pub struct Products {
    blas: CudaBlas,
    gemv: bool,
}

impl Products {
    /// cuBLAS on the GPU's stream; the GEMV kernel on unless `HEARTH_CUDA_GEMV=0`.
    pub fn new(gpu: &Gpu) -> Result<Products, ModelError> {
        let blas = CudaBlas::new(gpu.stream.clone())
            .map_err(|e| ModelError::Unsupported(format!("cuBLAS: {e}")))?;
        Ok(Products {
            blas,
            gemv: std::env::var("HEARTH_CUDA_GEMV").as_deref() != Ok("0"),
        })
    }

    /// Turns the GEMV kernel on or off (off: cuBLAS for every product).
    pub fn set_gemv(&mut self, on: bool) {
        self.gemv = on;
    }

    /// Whether the GEMV kernel takes this product: on, bf16, 1 to `GEMV_MAX_TOKENS`
    /// tokens, rows of whole 16-byte vectors.
    fn gemv_serves(&self, w: WeightRef, t: usize) -> bool {
        self.gemv && w.bf16 && (1..=GEMV_MAX_TOKENS).contains(&t) && w.cols.is_multiple_of(8)
    }

    /// `y[t, w.rows] = x[t, w.cols] · wᵀ (+ y when accumulating)`; x is in the weights'
    /// type, y is f32.
    ///
    /// # Safety
    /// `x` must hold `t * w.cols` elements and `y` `t * w.rows` f32, on the GPU's
    /// stream; `w` must point at `rows * cols` elements of its type.
    pub unsafe fn matmul(
        &self,
        gpu: &Gpu,
        x: u64,
        w: WeightRef,
        y: u64,
        t: usize,
        accumulate: bool,
    ) -> Result<(), ModelError> {
        if self.gemv_serves(w, t) {
            // Safety: the caller's sizes.
            return unsafe { gemv(gpu, x, w, y, t, accumulate) };
        }
        let ab = if w.bf16 {
            cudaDataType::CUDA_R_16BF
        } else {
            cudaDataType::CUDA_R_32F
        };
        let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
        // A column-major product of the row-major matrices. Safety: the caller's sizes;
        // alpha/beta live across the (host-side) call.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                Op::CUBLAS_OP_T,
                Op::CUBLAS_OP_N,
                w.rows as i32,
                t as i32,
                w.cols as i32,
                &alpha as *const f32 as *const c_void,
                w.ptr as *const c_void,
                ab,
                w.cols as i32,
                x as *const c_void,
                ab,
                w.cols as i32,
                &beta as *const f32 as *const c_void,
                y as *mut c_void,
                cudaDataType::CUDA_R_32F,
                w.rows as i32,
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
        if !self.gemv_serves(w, t) || !w.rows.is_multiple_of(2) {
            return Ok(false);
        }
        let (ffn, cols) = ((w.rows / 2) as i32, w.cols as i32);
        let cfg = gemv_config(w.rows / 2);
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

/// A GEMV launch of `warps` warps, `GEMV_ROWS_PER_BLOCK` a block.
fn gemv_config(warps: usize) -> LaunchConfig {
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
    t: usize,
    accumulate: bool,
) -> Result<(), ModelError> {
    let (rows, cols, acc) = (w.rows as i32, w.cols as i32, i32::from(accumulate));
    let cfg = gemv_config(w.rows);
    // Safety: the caller's sizes; the kernel reads rows * cols weights, t * cols of x,
    // and writes t * rows of y.
    unsafe {
        gpu.launch(
            GEMV_NAMES[t - 1],
            cfg,
            &[&y, &w.ptr, &x, &rows, &cols, &acc],
        )
    }
}
