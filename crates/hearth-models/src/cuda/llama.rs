//! A llama-family decoder on the GPU (Llama, Qwen2 with its q/k/v biases, Qwen3 with
//! its q/k norms): weights held on the device in bf16 (or f32 for exact checks
//! against the CPU), cuBLAS for the matrices with q/k/v and gate/up each fused into
//! one product, hearth's kernels for the rest, and a device KV pool read by the
//! paged-attention kernels. Same `CausalLm` contract as the CPU model, so the engine
//! above is unchanged.

use std::ffi::c_void;

use candle_core::quantized::QMatMul;
use candle_core::Tensor;
use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t as Op, cudaDataType,
};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

use super::paged_attention::{launch_raw as attend, AttnBuffers, DeviceBatch, Variant};
use super::{cuda_err, Gpu};
use crate::attention::{AttnMeta, AttnShape};
use crate::llama::{Llama, LlamaConfig};
use crate::quant::Linear;
use crate::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec};

/// The type weights are held in on the GPU (activations that a matrix product reads
/// follow it; the residual stream, the K/V pool and the logits stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuDtype {
    F32,
    Bf16,
}

/// `f` rounded to bf16 (nearest even), as its bits: what the GPU holds.
pub fn bf16_bits(f: f32) -> u16 {
    let u = f.to_bits();
    if f.is_nan() {
        return 0x7fc0;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

enum Weights {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<u16>),
}

/// A `[rows, cols]` matrix on the device (row-major).
struct Mat {
    w: Weights,
    rows: usize,
    cols: usize,
}

struct Layer {
    attn_norm: CudaSlice<f32>,
    /// q, k and v stacked: `[(heads + 2 kv_heads) * head_dim, hidden]`.
    wqkv: Mat,
    qkv_bias: Option<CudaSlice<f32>>,
    qk_norm: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    wo: Mat,
    ffn_norm: CudaSlice<f32>,
    /// gate and up stacked: `[2 * ffn, hidden]`.
    w_gate_up: Mat,
    w_down: Mat,
}

/// A step's activations, kept between steps and grown when a step has more tokens.
#[derive(Default)]
struct Scratch {
    tokens: usize,
    bufs: Vec<CudaSlice<f32>>,
}

/// Indices into `Scratch::bufs`.
const X: usize = 0;
const H: usize = 1;
const QKV: usize = 2;
const Q: usize = 3;
const A: usize = 4;
const GU: usize = 5;
const ACT: usize = 6;
const LOGITS_IN: usize = 7;

pub struct CudaLlama {
    gpu: Gpu,
    blas: CudaBlas,
    dtype: GpuDtype,
    spec: ModelSpec,
    cfg: LlamaConfig,
    embed: Mat,
    layers: Vec<Layer>,
    norm: CudaSlice<f32>,
    lm_head: Mat,
    inv_freq: CudaSlice<f32>,
    /// Per layer K and V pools, made when the engine's cache layout is first seen.
    pools: Vec<(CudaSlice<f32>, CudaSlice<f32>)>,
    scratch: Scratch,
    variant: Variant,
}

fn unsupported(what: &str) -> ModelError {
    ModelError::Unsupported(format!("CUDA llama: {what}"))
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}

/// The f32 tensor of a dense (dequantized) linear layer.
fn dense(l: &Linear) -> Result<&Tensor, ModelError> {
    match l {
        Linear::Candle(QMatMul::Tensor(t)) => Ok(t),
        _ => Err(unsupported(
            "load the model with dense f32 matrices (dequantize: true)",
        )),
    }
}

impl CudaLlama {
    /// Moves a llama whose matrices are dense f32 (GGUF loaded with `dequantize: true`,
    /// or a safetensors folder) to GPU `ordinal`, its weights as `dtype`.
    pub fn from_cpu(model: &Llama, ordinal: usize, dtype: GpuDtype) -> Result<CudaLlama, ModelError> {
        let gpu = Gpu::new(ordinal)?;
        let blas = CudaBlas::new(gpu.stream.clone())
            .map_err(|e| ModelError::Unsupported(format!("cuBLAS: {e}")))?;
        let up = |v: &[f32]| gpu.stream.memcpy_stod(v).map_err(cuda_err("upload"));
        // Rows of the given matrices stacked into one device matrix.
        let mat = |parts: &[&Linear]| -> Result<Mat, ModelError> {
            let (mut rows, mut cols, mut host) = (0, 0, Vec::new());
            for l in parts {
                let t = dense(l)?;
                let (r, c) = t.dims2()?;
                if rows > 0 && c != cols {
                    return Err(unsupported("stacked matrices of different widths"));
                }
                (rows, cols) = (rows + r, c);
                host.extend(host_f32(t)?);
            }
            let w = match dtype {
                GpuDtype::F32 => Weights::F32(up(&host)?),
                GpuDtype::Bf16 => {
                    let bits: Vec<u16> = host.iter().map(|&f| bf16_bits(f)).collect();
                    drop(host);
                    Weights::Bf16(gpu.stream.memcpy_stod(&bits).map_err(cuda_err("upload"))?)
                }
            };
            Ok(Mat { w, rows, cols })
        };
        let embed = mat(&[&model.embed])?;
        let mut layers = Vec::with_capacity(model.layers.len());
        for w in &model.layers {
            let qkv_bias = match &w.qkv_bias {
                Some([bq, bk, bv]) => {
                    let mut b = host_f32(bq)?;
                    b.extend(host_f32(bk)?);
                    b.extend(host_f32(bv)?);
                    Some(up(&b)?)
                }
                None => None,
            };
            let qk_norm = match &w.qk_norm {
                Some([nq, nk]) => Some((up(&host_f32(nq)?)?, up(&host_f32(nk)?)?)),
                None => None,
            };
            layers.push(Layer {
                attn_norm: up(&host_f32(&w.attn_norm)?)?,
                wqkv: mat(&[&w.wq, &w.wk, &w.wv])?,
                qkv_bias,
                qk_norm,
                wo: mat(&[&w.wo])?,
                ffn_norm: up(&host_f32(&w.ffn_norm)?)?,
                w_gate_up: mat(&[&w.w_gate, &w.w_up])?,
                w_down: mat(&[&w.w_down])?,
            });
        }
        let inv_freq: Vec<f32> = model.rope.inv_freq().iter().map(|&f| f as f32).collect();
        Ok(CudaLlama {
            blas,
            dtype,
            spec: model.spec.clone(),
            cfg: model.cfg.clone(),
            embed,
            layers,
            norm: up(&host_f32(&model.norm)?)?,
            lm_head: mat(&[&model.lm_head])?,
            inv_freq: up(&inv_freq)?,
            pools: Vec::new(),
            scratch: Scratch::default(),
            variant: Variant::Split,
            gpu,
        })
    }

    /// Which attention kernel the steps use (the split kernel unless told otherwise).
    pub fn set_attention(&mut self, variant: Variant) {
        self.variant = variant;
    }

    fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        s.device_ptr(&self.gpu.stream).0
    }

    fn mat_ptr(&self, m: &Mat) -> u64 {
        match &m.w {
            Weights::F32(s) => self.ptr(s),
            Weights::Bf16(s) => self.ptr(s),
        }
    }

    fn bf16(&self) -> i32 {
        i32::from(self.dtype == GpuDtype::Bf16)
    }

    /// `y[t, w.rows] = x[t, w.cols] · wᵀ (+ y when accumulating)`: a column-major cuBLAS
    /// product of the row-major matrices; x is in the weights' type, y is f32.
    ///
    /// # Safety
    /// `x` must hold `t * w.cols` elements and `y` `t * w.rows` f32, on this stream.
    unsafe fn matmul(&self, x: u64, w: &Mat, y: u64, t: usize, accumulate: bool) -> Result<(), ModelError> {
        let ab = match self.dtype {
            GpuDtype::F32 => cudaDataType::CUDA_R_32F,
            GpuDtype::Bf16 => cudaDataType::CUDA_R_16BF,
        };
        let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
        // Safety: the caller's sizes; alpha/beta live across the (host-side) call.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                Op::CUBLAS_OP_T,
                Op::CUBLAS_OP_N,
                w.rows as i32,
                t as i32,
                w.cols as i32,
                &alpha as *const f32 as *const c_void,
                self.mat_ptr(w) as *const c_void,
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

    /// Launches kernel `name` with `args` pushed in order.
    fn launch(
        &self,
        name: &str,
        grid: usize,
        threads: u32,
        shared: u32,
        args: &[&dyn KernelArg],
    ) -> Result<(), ModelError> {
        let f = self.gpu.function(name)?;
        let mut b = self.gpu.stream.launch_builder(&f);
        for a in args {
            a.push(&mut b);
        }
        let cfg = LaunchConfig {
            grid_dim: (grid as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: shared,
        };
        // Safety: every call site passes its kernel's arguments, buffers sized for
        // this step (see forward).
        unsafe { b.launch(cfg) }.map_err(cuda_err("launch"))?;
        Ok(())
    }

    fn ensure_pools(&mut self, cache: &KvCache) -> Result<(), ModelError> {
        if self.pools.len() == self.layers.len() {
            return Ok(());
        }
        let n = cache.num_slots() * cache.row_len();
        let alloc = |n| {
            self.gpu
                .stream
                .alloc_zeros::<f32>(n)
                .map_err(cuda_err("KV pool"))
        };
        self.pools = (0..self.layers.len())
            .map(|_| Ok((alloc(n)?, alloc(n)?)))
            .collect::<Result<_, ModelError>>()?;
        Ok(())
    }

    /// Activation buffers for `t` tokens (reused while big enough).
    fn ensure_scratch(&mut self, t: usize) -> Result<(), ModelError> {
        if self.scratch.tokens >= t {
            return Ok(());
        }
        let c = &self.cfg;
        let (hd, qkv) = (c.head_dim, (c.num_heads + 2 * c.num_kv_heads) * c.head_dim);
        let sizes = [
            c.hidden_size,
            c.hidden_size,
            qkv,
            c.num_heads * hd,
            c.num_heads * hd,
            2 * c.ffn_size,
            c.ffn_size,
            c.hidden_size,
        ];
        self.scratch.bufs.clear();
        for n in sizes {
            let b = self.gpu.stream.alloc_zeros::<f32>(n * t).map_err(cuda_err("alloc"))?;
            self.scratch.bufs.push(b);
        }
        self.scratch.tokens = t;
        Ok(())
    }
}

/// A kernel argument of any type `launch` takes.
trait KernelArg {
    fn push<'a>(&'a self, b: &mut cudarc::driver::LaunchArgs<'a>);
}
impl KernelArg for u64 {
    fn push<'a>(&'a self, b: &mut cudarc::driver::LaunchArgs<'a>) {
        b.arg(self);
    }
}
impl KernelArg for i32 {
    fn push<'a>(&'a self, b: &mut cudarc::driver::LaunchArgs<'a>) {
        b.arg(self);
    }
}
impl KernelArg for i64 {
    fn push<'a>(&'a self, b: &mut cudarc::driver::LaunchArgs<'a>) {
        b.arg(self);
    }
}
impl KernelArg for f32 {
    fn push<'a>(&'a self, b: &mut cudarc::driver::LaunchArgs<'a>) {
        b.arg(self);
    }
}

impl CausalLm for CudaLlama {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn kv_on_device(&self) -> bool {
        true
    }

    fn forward(
        &mut self,
        batch: &BatchInput,
        cache: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let meta = AttnMeta::for_model(&self.spec, batch, cache)?;
        let mut logits = vec![Vec::new(); batch.seqs.len()];
        let t = batch.tokens.len();
        if t == 0 {
            return Ok(logits);
        }
        self.ensure_pools(cache)?;
        self.ensure_scratch(t)?;
        let c = self.cfg.clone();
        let (hidden, nh, nkv, hd) = (c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim);
        let st = self.gpu.stream.clone();
        let up_i32 = |v: Vec<i32>| st.memcpy_stod(&v).map_err(cuda_err("upload"));
        let ids = up_i32(batch.tokens.iter().map(|&x| x as i32).collect())?;
        let slots = up_i32(batch.slot_mapping.iter().map(|&x| x as i32).collect())?;
        let dbatch = DeviceBatch::upload(&self.gpu, batch, &meta)?;
        let (ids, slots, positions) = (self.ptr(&ids), self.ptr(&slots), self.ptr(&dbatch.positions));
        let s: Vec<u64> = self.scratch.bufs.iter().map(|b| self.ptr(b)).collect();
        let bf16 = self.bf16();
        let (h32, nh32, nkv32, hd32) = (hidden as i32, nh as i32, nkv as i32, hd as i32);
        let (ffn32, eps, neox) = (c.ffn_size as i32, c.rms_eps, i32::from(c.neox_rope));
        let null = 0u64;
        let shape = AttnShape {
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window: None,
            softcap: None,
        };
        let embed = self.mat_ptr(&self.embed);
        self.launch("embedding", t, 256, 0, &[&s[X], &embed, &bf16, &ids, &h32])?;
        let inv_freq = self.ptr(&self.inv_freq);
        for (i, w) in self.layers.iter().enumerate() {
            let (kp, vp) = (self.ptr(&self.pools[i].0), self.ptr(&self.pools[i].1));
            let attn_norm = self.ptr(&w.attn_norm);
            self.launch("rms_norm", t, 256, 0, &[&s[H], &bf16, &s[X], &null, &attn_norm, &h32, &eps])?;
            // Safety: H holds t * hidden, QKV t * (heads + 2 kv heads) * head_dim.
            unsafe { self.matmul(s[H], &w.wqkv, s[QKV], t, false)? };
            let bias = w.qkv_bias.as_ref().map_or(0, |b| self.ptr(b));
            let (qn, kn) = w.qk_norm.as_ref().map_or((0, 0), |(q, k)| (self.ptr(q), self.ptr(k)));
            self.launch(
                "qkv_finish",
                t,
                256,
                (8 * hd * 4) as u32,
                &[
                    &s[Q], &kp, &vp, &s[QKV], &bias, &qn, &kn, &eps, &positions, &slots,
                    &inv_freq, &nh32, &nkv32, &hd32, &neox,
                ],
            )?;
            let bufs = AttnBuffers {
                out: s[A],
                out_bf16: bf16 == 1,
                q: s[Q],
                k_pool: kp,
                v_pool: vp,
            };
            // Safety: Q and A hold t * heads * head_dim; AttnMeta checked the slots and
            // block tables against the pool the engine sized.
            unsafe { attend(&self.gpu, bufs, cache.layout.block_size, &dbatch, shape, self.variant)? };
            // Safety: A holds t * heads * head_dim, X t * hidden.
            unsafe { self.matmul(s[A], &w.wo, s[X], t, true)? };
            let ffn_norm = self.ptr(&w.ffn_norm);
            self.launch("rms_norm", t, 256, 0, &[&s[H], &bf16, &s[X], &null, &ffn_norm, &h32, &eps])?;
            // Safety: GU holds t * 2 ffn.
            unsafe { self.matmul(s[H], &w.w_gate_up, s[GU], t, false)? };
            let n = (t * c.ffn_size) as i64;
            let grid = (t * c.ffn_size).div_ceil(256).min(4096);
            self.launch("silu_mul", grid, 256, 0, &[&s[ACT], &bf16, &s[GU], &ffn32, &n])?;
            // Safety: ACT holds t * ffn.
            unsafe { self.matmul(s[ACT], &w.w_down, s[X], t, true)? };
        }
        let wanted: Vec<usize> = (0..batch.seqs.len())
            .filter(|&s| batch.seqs[s].needs_logits)
            .collect();
        if wanted.is_empty() {
            return Ok(logits);
        }
        let rows = up_i32(wanted.iter().map(|&s| meta.last_row[s] as i32).collect())?;
        let (rows_ptr, norm) = (self.ptr(&rows), self.ptr(&self.norm));
        self.launch(
            "rms_norm",
            wanted.len(),
            256,
            0,
            &[&s[LOGITS_IN], &bf16, &s[X], &rows_ptr, &norm, &h32, &eps],
        )?;
        let vocab = self.lm_head.rows;
        let out = st
            .alloc_zeros::<f32>(wanted.len() * vocab)
            .map_err(cuda_err("alloc"))?;
        // Safety: LOGITS_IN holds at least wanted.len() <= t rows of hidden; out is sized.
        unsafe { self.matmul(s[LOGITS_IN], &self.lm_head, self.ptr(&out), wanted.len(), false)? };
        let host = st.memcpy_dtov(&out).map_err(cuda_err("download"))?;
        for (i, s) in wanted.into_iter().enumerate() {
            logits[s] = host[i * vocab..(i + 1) * vocab].to_vec();
        }
        Ok(logits)
    }
}

/// Rounds every matrix of a dense CPU llama to bf16 in place: the CPU reference for a
/// GPU model loaded with `GpuDtype::Bf16`, so a check compares arithmetic, not storage.
pub fn round_weights_to_bf16(model: &mut Llama) -> Result<(), ModelError> {
    let round = |l: &mut Linear| -> Result<(), ModelError> {
        let t = dense(l)?;
        let r = t
            .to_dtype(candle_core::DType::BF16)?
            .to_dtype(candle_core::DType::F32)?;
        *l = Linear::Candle(QMatMul::Tensor(r));
        Ok(())
    };
    round(&mut model.embed)?;
    round(&mut model.lm_head)?;
    for w in &mut model.layers {
        for l in [
            &mut w.wq,
            &mut w.wk,
            &mut w.wv,
            &mut w.wo,
            &mut w.w_gate,
            &mut w.w_up,
            &mut w.w_down,
        ] {
            round(l)?;
        }
    }
    Ok(())
}
