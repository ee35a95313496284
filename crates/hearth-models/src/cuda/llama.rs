//! A llama decoder on the GPU (f32, first step): weights dequantized at load and
//! held on the device, cuBLAS for the matrices, hearth's kernels for the rest, and a
//! device KV pool read by the paged-attention kernel. Same `CausalLm` contract as the
//! CPU model, so the engine above is unchanged.

use candle_core::quantized::QMatMul;
use candle_core::Tensor;
use cudarc::cublas::{sys::cublasOperation_t as Op, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::paged_attention::{launch as attend, DeviceBatch, Variant};
use super::{cuda_err, Gpu};
use crate::attention::{AttnMeta, AttnShape};
use crate::llama::{Llama, LlamaConfig};
use crate::quant::Linear;
use crate::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec};

/// Launches kernel `$name` over `$grid` blocks of `$threads` with the arguments given.
/// Each use passes the arguments of the kernel it names, sized for its grid.
macro_rules! launch {
    ($gpu:expr, $name:expr, $grid:expr, $threads:expr, $($arg:expr),+ $(,)?) => {{
        let f = $gpu.function($name)?;
        let mut b = $gpu.stream.launch_builder(&f);
        $( b.arg($arg); )+
        let cfg = LaunchConfig {
            grid_dim: ($grid as u32, 1, 1),
            block_dim: ($threads, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety: see above; buffers were allocated for this step's sizes.
        unsafe { b.launch(cfg) }.map_err(cuda_err("launch"))?;
    }};
}

/// A `[rows, cols]` f32 matrix on the device (row-major).
struct Mat {
    data: CudaSlice<f32>,
    rows: usize,
    cols: usize,
}

struct Layer {
    attn_norm: CudaSlice<f32>,
    wq: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    ffn_norm: CudaSlice<f32>,
    w_gate: Mat,
    w_up: Mat,
    w_down: Mat,
}

pub struct CudaLlama {
    gpu: Gpu,
    blas: CudaBlas,
    spec: ModelSpec,
    cfg: LlamaConfig,
    embed: Mat,
    layers: Vec<Layer>,
    norm: CudaSlice<f32>,
    lm_head: Mat,
    inv_freq: CudaSlice<f32>,
    /// Per layer K and V pools, made when the engine's cache layout is first seen.
    pools: Vec<(CudaSlice<f32>, CudaSlice<f32>)>,
}

fn unsupported(what: &str) -> ModelError {
    ModelError::Unsupported(format!("CUDA llama: {what}"))
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}

impl CudaLlama {
    /// Moves a llama loaded with `dequantize: true` (every matrix an f32 tensor) to
    /// GPU `ordinal`. Qwen2's biases and Qwen3's q/k norms are not on the GPU yet.
    pub fn from_cpu(model: &Llama, ordinal: usize) -> Result<CudaLlama, ModelError> {
        let gpu = Gpu::new(ordinal)?;
        let blas = CudaBlas::new(gpu.stream.clone())
            .map_err(|e| ModelError::Unsupported(format!("cuBLAS: {e}")))?;
        let up = |v: &[f32]| gpu.stream.memcpy_stod(v).map_err(cuda_err("upload"));
        let mat = |l: &Linear| -> Result<Mat, ModelError> {
            let t = match l {
                Linear::Candle(QMatMul::Tensor(t)) => t,
                _ => return Err(unsupported("load the model with dequantize: true")),
            };
            let (rows, cols) = t.dims2()?;
            Ok(Mat {
                data: up(&host_f32(t)?)?,
                rows,
                cols,
            })
        };
        let embed = mat(&model.embed)?;
        let mut layers = Vec::with_capacity(model.layers.len());
        for w in &model.layers {
            if w.qkv_bias.is_some() || w.qk_norm.is_some() {
                return Err(unsupported(
                    "q/k/v biases and q/k norms are CPU-only for now",
                ));
            }
            layers.push(Layer {
                attn_norm: up(&host_f32(&w.attn_norm)?)?,
                wq: mat(&w.wq)?,
                wk: mat(&w.wk)?,
                wv: mat(&w.wv)?,
                wo: mat(&w.wo)?,
                ffn_norm: up(&host_f32(&w.ffn_norm)?)?,
                w_gate: mat(&w.w_gate)?,
                w_up: mat(&w.w_up)?,
                w_down: mat(&w.w_down)?,
            });
        }
        let inv_freq: Vec<f32> = model.rope.inv_freq().iter().map(|&f| f as f32).collect();
        Ok(CudaLlama {
            blas,
            spec: model.spec.clone(),
            cfg: model.cfg.clone(),
            embed,
            layers,
            norm: up(&host_f32(&model.norm)?)?,
            lm_head: mat(&model.lm_head)?,
            inv_freq: up(&inv_freq)?,
            pools: Vec::new(),
            gpu,
        })
    }

    fn alloc(&self, n: usize) -> Result<CudaSlice<f32>, ModelError> {
        self.gpu
            .stream
            .alloc_zeros::<f32>(n)
            .map_err(cuda_err("alloc"))
    }

    /// `y[T, w.rows] = x[T, w.cols] · wᵀ + beta · y` (row-major, via column-major cuBLAS).
    fn matmul(
        &self,
        x: &CudaSlice<f32>,
        w: &Mat,
        y: &mut CudaSlice<f32>,
        t: usize,
        beta: f32,
    ) -> Result<(), ModelError> {
        let cfg = GemmConfig {
            transa: Op::CUBLAS_OP_T,
            transb: Op::CUBLAS_OP_N,
            m: w.rows as i32,
            n: t as i32,
            k: w.cols as i32,
            alpha: 1.0f32,
            lda: w.cols as i32,
            ldb: w.cols as i32,
            beta,
            ldc: w.rows as i32,
        };
        // Safety: x is [t, cols], w is [rows, cols], y is [t, rows], all on this stream.
        unsafe { self.blas.gemm(cfg, &w.data, x, y) }
            .map_err(|e| ModelError::Unsupported(format!("cuBLAS gemm: {e}")))
    }

    fn rms_norm(
        &self,
        out: &mut CudaSlice<f32>,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        rows: usize,
    ) -> Result<(), ModelError> {
        let (width, eps) = (self.cfg.hidden_size as i32, self.cfg.rms_eps);
        let f = self.gpu.function("rms_norm_f32")?;
        let mut b = self.gpu.stream.launch_builder(&f);
        b.arg(out).arg(x).arg(w).arg(&width).arg(&eps);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety: out and x are [rows, hidden], w is [hidden].
        unsafe { b.launch(cfg) }.map_err(cuda_err("launch"))?;
        Ok(())
    }

    fn ensure_pools(&mut self, cache: &KvCache) -> Result<(), ModelError> {
        if self.pools.len() == self.layers.len() {
            return Ok(());
        }
        let n = cache.num_slots() * cache.row_len();
        self.pools = (0..self.layers.len())
            .map(|_| Ok((self.alloc(n)?, self.alloc(n)?)))
            .collect::<Result<_, ModelError>>()?;
        Ok(())
    }
}

impl CausalLm for CudaLlama {
    fn spec(&self) -> &ModelSpec {
        &self.spec
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
        let c = self.cfg.clone();
        let (hidden, nh, nkv, hd) = (c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim);
        let st = self.gpu.stream.clone();
        let up_i32 = |v: Vec<i32>| st.memcpy_stod(&v).map_err(cuda_err("upload"));
        let ids = up_i32(batch.tokens.iter().map(|&x| x as i32).collect())?;
        let positions = up_i32(batch.positions.iter().map(|&x| x as i32).collect())?;
        let slots = up_i32(batch.slot_mapping.iter().map(|&x| x as i32).collect())?;
        let dbatch = DeviceBatch::upload(&self.gpu, batch, &meta)?;

        let mut x = self.alloc(t * hidden)?;
        let h32 = hidden as i32;
        launch!(
            self.gpu,
            "embedding_f32",
            t,
            256,
            &mut x,
            &self.embed.data,
            &ids,
            &h32
        );
        let mut h = self.alloc(t * hidden)?;
        let mut q = self.alloc(t * nh * hd)?;
        let mut k = self.alloc(t * nkv * hd)?;
        let mut v = self.alloc(t * nkv * hd)?;
        let mut a = self.alloc(t * nh * hd)?;
        let mut gate = self.alloc(t * c.ffn_size)?;
        let mut upm = self.alloc(t * c.ffn_size)?;
        let (neox, hd32, row) = (c.neox_rope as i32, hd as i32, (nkv * hd) as i32);
        let shape = AttnShape {
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window: None,
            softcap: None,
        };
        for (i, w) in self.layers.iter().enumerate() {
            self.rms_norm(&mut h, &x, &w.attn_norm, t)?;
            self.matmul(&h, &w.wq, &mut q, t, 0.0)?;
            self.matmul(&h, &w.wk, &mut k, t, 0.0)?;
            self.matmul(&h, &w.wv, &mut v, t, 0.0)?;
            let (nh32, nkv32) = (nh as i32, nkv as i32);
            launch!(
                self.gpu,
                "rope_f32",
                t,
                128,
                &mut q,
                &positions,
                &self.inv_freq,
                &nh32,
                &hd32,
                &neox
            );
            launch!(
                self.gpu,
                "rope_f32",
                t,
                128,
                &mut k,
                &positions,
                &self.inv_freq,
                &nkv32,
                &hd32,
                &neox
            );
            let (kp, vp) = &mut self.pools[i];
            {
                let f = self.gpu.function("kv_write_f32")?;
                let mut b = st.launch_builder(&f);
                b.arg(&mut *kp)
                    .arg(&mut *vp)
                    .arg(&k)
                    .arg(&v)
                    .arg(&slots)
                    .arg(&row);
                let cfg = LaunchConfig {
                    grid_dim: (t as u32, 1, 1),
                    block_dim: (128, 1, 1),
                    shared_mem_bytes: 0,
                };
                // Safety: k/v are [t, row]; slots were validated against the pool by AttnMeta.
                unsafe { b.launch(cfg) }.map_err(cuda_err("launch"))?;
            }
            let (kp, vp) = &self.pools[i];
            attend(
                &self.gpu,
                &mut a,
                &q,
                kp,
                vp,
                cache.layout.block_size,
                &dbatch,
                shape,
                Variant::PerHead,
            )?;
            self.matmul(&a, &w.wo, &mut x, t, 1.0)?;
            self.rms_norm(&mut h, &x, &w.ffn_norm, t)?;
            self.matmul(&h, &w.w_gate, &mut gate, t, 0.0)?;
            self.matmul(&h, &w.w_up, &mut upm, t, 0.0)?;
            let n = (t * c.ffn_size) as i64;
            launch!(self.gpu, "silu_mul_f32", 1024, 256, &mut gate, &upm, &n);
            self.matmul(&gate, &w.w_down, &mut x, t, 1.0)?;
        }
        let wanted: Vec<usize> = (0..batch.seqs.len())
            .filter(|&s| batch.seqs[s].needs_logits)
            .collect();
        if wanted.is_empty() {
            return Ok(logits);
        }
        let rows = up_i32(wanted.iter().map(|&s| meta.last_row[s] as i32).collect())?;
        let mut last = self.alloc(wanted.len() * hidden)?;
        launch!(
            self.gpu,
            "gather_rows_f32",
            wanted.len(),
            256,
            &mut last,
            &x,
            &rows,
            &h32
        );
        let mut normed = self.alloc(wanted.len() * hidden)?;
        self.rms_norm(&mut normed, &last, &self.norm, wanted.len())?;
        let vocab = self.lm_head.rows;
        let mut out = self.alloc(wanted.len() * vocab)?;
        self.matmul(&normed, &self.lm_head, &mut out, wanted.len(), 0.0)?;
        let host = st.memcpy_dtov(&out).map_err(cuda_err("download"))?;
        for (i, s) in wanted.into_iter().enumerate() {
            logits[s] = host[i * vocab..(i + 1) * vocab].to_vec();
        }
        Ok(logits)
    }
}
