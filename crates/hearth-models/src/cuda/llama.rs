//! A llama-family decoder on the GPU (Llama, Qwen2 with its q/k/v biases, Qwen3 with
//! its q/k norms): weights held on the device in bf16 (or f32 for exact checks
//! against the CPU), q/k/v and gate/up each stacked into one product (`product.rs`:
//! cuBLAS, or hearth's GEMV kernel for steps of 1-2 tokens, whose gate/up product
//! applies SiLU·up itself), hearth's kernels for the rest, and a device KV pool read
//! by the paged-attention kernels. Same `CausalLm` contract as the CPU model, so the
//! engine above is unchanged.

use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig};

mod fused_layer;

use super::paged_attention::{launch_raw as attend, AttnBuffers, DeviceBatch, Variant};
use super::pick::Picker;
use super::product::{dequant_rows, Products, WeightKind, WeightRef, GEMV_MAX_TOKENS};
use super::step_graph::{Graph, GraphKey, StepInputs};
pub use super::weights::{bf16_bits, round_weights_to_bf16, upload_quant, GpuDtype};
use super::weights::{host_f32, same_weights, upload_stacked, Mat, Segment, Weights};
use super::{cuda_err, Gpu, KernelArg};
use crate::attention::{AttnMeta, AttnShape};
use crate::llama::{Llama, LlamaConfig};
use crate::quant::Linear;
use crate::{BatchInput, CausalLm, KvCache, KvDtype, ModelError, ModelSpec, Next, Pick, SeqInput};

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
/// The folded RMSNorms' partial sums of squares (fused steps: `fused_step.rs`).
const PARTS: usize = 8;

/// The device addresses every layer of one step uses.
struct StepPtrs {
    /// `Scratch::bufs`, by the indices above.
    s: Vec<u64>,
    t: usize,
    positions: u64,
    slots: u64,
    inv_freq: u64,
}

pub struct CudaLlama {
    gpu: Gpu,
    products: Products,
    dtype: GpuDtype,
    spec: ModelSpec,
    cfg: LlamaConfig,
    embed: Mat,
    layers: Vec<Layer>,
    norm: CudaSlice<f32>,
    /// None: tied to the embedding (one copy on the device).
    lm_head: Option<Mat>,
    inv_freq: CudaSlice<f32>,
    /// Per layer K and V pools (bytes of f32 or f16 elements), made when the engine's
    /// cache layout is first seen.
    pools: Vec<(CudaSlice<u8>, CudaSlice<u8>)>,
    /// The pools hold f16 (the cache's `KvDtype::F16`), not f32.
    kv_f16: bool,
    scratch: Scratch,
    variant: Variant,
    inputs: Option<StepInputs>,
    part: Option<CudaSlice<f32>>,
    logits_dev: Option<CudaSlice<f32>>,
    logits_host: Option<cudarc::driver::PinnedHostSlice<f32>>,
    /// Logits vectors handed back by the engine, refilled instead of allocated.
    spare: Vec<Vec<f32>>,
    graphs: std::collections::HashMap<GraphKey, Graph>,
    graphs_on: bool,
    /// Steps whose sequences all take an argmax or a temperature draw get the argmax
    /// or the row's head from the GPU (`CausalLm::step`; on unless
    /// `HEARTH_CUDA_ARGMAX=0`), through these buffers.
    device_pick: bool,
    picker: Picker,
    /// Which sequences of the last step have a logits row, in row order.
    last_wanted: Vec<usize>,
    /// Whether steps of 1-2 tokens may take the fused kernels (`fused_step.rs`): every
    /// matrix in bf16, in one segment, no q/k norms.
    fusable: bool,
    /// Whether they do (unless `HEARTH_CUDA_FUSE=0`).
    fuse: bool,
}

pub(super) fn unsupported(what: &str) -> ModelError {
    ModelError::Unsupported(format!("CUDA llama: {what}"))
}

impl CudaLlama {
    /// Moves a llama to GPU `ordinal`: matrices of a quantized type with GPU kernels
    /// (`QuantType`) as the model holds them when it was loaded as stored (a GGUF file
    /// with `MatrixForm::Stored`), every other matrix as `dtype`, which is also the
    /// activations' type. A model loaded dense (`MatrixForm::Dense`, or a safetensors
    /// folder) is held wholly as `dtype`.
    pub fn from_cpu(
        model: &Llama,
        ordinal: usize,
        dtype: GpuDtype,
    ) -> Result<CudaLlama, ModelError> {
        let gpu = Gpu::new(ordinal)?;
        let mut products = Products::new(&gpu, dtype == GpuDtype::Bf16)?;
        let up = |v: &[f32]| gpu.stream.memcpy_stod(v).map_err(cuda_err("upload"));
        // Rows of the given matrices stacked into one device matrix.
        let mat = |parts: &[&Linear]| upload_stacked(&gpu.stream, parts, dtype);
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
        let lm_head = if same_weights(&model.lm_head, &model.embed) {
            None
        } else {
            Some(mat(&[&model.lm_head])?)
        };
        let mut quant: Vec<_> = embed.quant_types().collect();
        for m in layers
            .iter()
            .flat_map(|l| [&l.wqkv, &l.wo, &l.w_gate_up, &l.w_down])
            .chain(&lm_head)
        {
            quant.extend(m.quant_types());
        }
        if !quant.is_empty() {
            // Which blocks stay quantized (a type without GPU kernels was dequantized).
            let mut held: Vec<String> = Vec::new();
            for t in super::quant_type::QuantType::ALL {
                let n = quant.iter().filter(|&&q| q == t).count();
                if n > 0 {
                    held.push(format!("{t:?} x{n}"));
                }
            }
            tracing::info!(segments = %held.join(", "), "GGUF blocks kept quantized on the GPU");
            gpu.load_quant_kernels(&quant)?;
            products.reserve_dequant(&gpu)?;
        }
        let inv_freq: Vec<f32> = model.rope.inv_freq().iter().map(|&f| f as f32).collect();
        let bf16_single = |m: &Mat| {
            matches!(
                m.segs.as_slice(),
                [Segment {
                    w: Weights::Bf16(_),
                    ..
                }]
            )
        };
        let fusable = model.cfg.head_dim.is_multiple_of(2)
            && layers.iter().all(|l| {
                l.qk_norm.is_none()
                    && [&l.wqkv, &l.wo, &l.w_gate_up, &l.w_down]
                        .into_iter()
                        .all(|m| bf16_single(m) && m.cols.is_multiple_of(8))
            });
        Ok(CudaLlama {
            products,
            dtype,
            spec: model.spec.clone(),
            cfg: model.cfg.clone(),
            embed,
            layers,
            norm: up(&host_f32(&model.norm)?)?,
            lm_head,
            inv_freq: up(&inv_freq)?,
            pools: Vec::new(),
            kv_f16: false,
            scratch: Scratch::default(),
            variant: Variant::Split,
            inputs: None,
            part: None,
            logits_dev: None,
            logits_host: None,
            spare: Vec::new(),
            graphs: Default::default(),
            graphs_on: std::env::var("HEARTH_CUDA_GRAPHS").as_deref() != Ok("0"),
            device_pick: std::env::var("HEARTH_CUDA_ARGMAX").as_deref() != Ok("0"),
            picker: Picker::default(),
            last_wanted: Vec::new(),
            fusable,
            fuse: std::env::var("HEARTH_CUDA_FUSE").as_deref() != Ok("0"),
            gpu,
        })
    }

    /// Which attention kernel the steps use (the split kernel unless told otherwise).
    pub fn set_attention(&mut self, variant: Variant) {
        self.variant = variant;
        self.graphs.clear();
    }

    /// Whether decode steps replay captured CUDA graphs (on unless
    /// `HEARTH_CUDA_GRAPHS=0`, or after a capture failed).
    pub fn set_graphs(&mut self, on: bool) {
        self.graphs_on = on;
        self.graphs.clear();
    }

    /// Whether steps of few tokens use hearth's GEMV kernel instead of cuBLAS (on
    /// unless `HEARTH_CUDA_GEMV=0`).
    pub fn set_gemv(&mut self, on: bool) {
        self.products.set_gemv(on);
        self.graphs.clear();
    }

    /// Whether decode steps of 1-2 tokens take the fused kernels where the model allows
    /// (on unless `HEARTH_CUDA_FUSE=0`).
    pub fn set_fuse(&mut self, on: bool) {
        self.fuse = on;
        self.graphs.clear();
    }

    /// Whether kernels launch with programmatic dependent launch (on where the GPU has
    /// it, unless `HEARTH_CUDA_PDL=0`).
    pub fn set_pdl(&mut self, on: bool) {
        self.gpu.set_pdl(on);
        self.graphs.clear();
    }

    fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        s.device_ptr(&self.gpu.stream).0
    }

    /// The LM head: its own matrix, or the embedding it is tied to.
    fn head(&self) -> &Mat {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    fn bf16(&self) -> i32 {
        i32::from(self.dtype == GpuDtype::Bf16)
    }

    /// `y[t, w.rows] = x[t, w.cols] · wᵀ (+ y when accumulating)`; x is in the weights'
    /// type, y is f32.
    ///
    /// # Safety
    /// `x` must hold `t * w.cols` elements and `y` `t * w.rows` f32, on this stream.
    unsafe fn matmul(
        &self,
        x: u64,
        w: &Mat,
        y: u64,
        t: usize,
        accumulate: bool,
    ) -> Result<(), ModelError> {
        let mut row = 0;
        for seg in &w.segs {
            let r = self.weight_ref(seg, w.cols);
            // Safety: the caller's sizes; this segment's rows are columns row.. of y.
            unsafe {
                self.products
                    .matmul(&self.gpu, x, r, y + 4 * row as u64, w.rows, t, accumulate)?
            };
            row += seg.rows;
        }
        Ok(())
    }

    /// `y = RMSNorm(X) · wᵀ` for the step's `t` rows of the residual stream X (the
    /// normalized rows go through H).
    ///
    /// # Safety
    /// `y` must hold `t * w.rows` f32; the scratch buffers hold `t` rows.
    unsafe fn norm_matmul(
        &self,
        norm: &CudaSlice<f32>,
        w: &Mat,
        y: u64,
        t: usize,
    ) -> Result<(), ModelError> {
        let h = self.norm_rows(norm, t)?;
        // Safety: H holds t * hidden.
        unsafe { self.matmul(h, w, y, t, false) }
    }

    /// `H = RMSNorm(X)` for the step's `t` rows, in what the products read; returns H.
    fn norm_rows(&self, norm: &CudaSlice<f32>, t: usize) -> Result<u64, ModelError> {
        let (x, h) = (
            self.ptr(&self.scratch.bufs[X]),
            self.ptr(&self.scratch.bufs[H]),
        );
        let (norm, eps) = (self.ptr(norm), self.cfg.rms_eps);
        let (bf16, null, width) = (self.bf16(), 0u64, self.cfg.hidden_size as i32);
        let args: [&dyn KernelArg; 7] = [&h, &bf16, &x, &null, &norm, &width, &eps];
        self.launch("rms_norm", t, NORM_THREADS, 0, &args)?;
        Ok(h)
    }

    /// `ACT = SiLU(gate) * up` of `RMSNorm(X)`'s gate/up product: one fused kernel
    /// where the GEMV kernel serves the product, else the product into `gu` and
    /// `silu_mul`.
    ///
    /// # Safety
    /// `gu` must hold `t * 2 * ffn` f32 and `act` `t * ffn` activations.
    unsafe fn mlp_up(
        &self,
        norm: &CudaSlice<f32>,
        w: &Mat,
        gu: u64,
        act: u64,
        t: usize,
    ) -> Result<(), ModelError> {
        let h = self.norm_rows(norm, t)?;
        // Safety: H holds t * hidden; the caller's sizes for act.
        if let [seg] = w.segs.as_slice() {
            if unsafe {
                self.products
                    .matmul_silu(&self.gpu, h, self.weight_ref(seg, w.cols), act, t)?
            } {
                return Ok(());
            }
        }
        // Safety: as above, gu holds t * 2 * ffn.
        unsafe { self.matmul(h, w, gu, t, false)? };
        let ffn = self.cfg.ffn_size;
        let (n, ffn32, bf16) = ((t * ffn) as i64, ffn as i32, self.bf16());
        let grid = (t * ffn).div_ceil(256).min(4096);
        self.launch("silu_mul", grid, 256, 0, &[&act, &bf16, &gu, &ffn32, &n])
    }

    fn weight_ref(&self, seg: &Segment, cols: usize) -> WeightRef {
        let (ptr, kind) = match &seg.w {
            Weights::F32(s) => (self.ptr(s), WeightKind::F32),
            Weights::Bf16(s) => (self.ptr(s), WeightKind::Bf16),
            Weights::Quant(ty, s) => {
                let p = self.ptr(s);
                let meta = p + ty.meta_offset(seg.rows, cols) as u64;
                (p, WeightKind::Quant { ty: *ty, meta })
            }
        };
        WeightRef {
            ptr,
            rows: seg.rows,
            cols,
            kind,
        }
    }

    /// A matrix held in one segment (what the fused kernels multiply).
    fn single_ref(&self, m: &Mat) -> Result<WeightRef, ModelError> {
        match m.segs.as_slice() {
            [seg] => Ok(self.weight_ref(seg, m.cols)),
            _ => Err(unsupported("a fused product of several segments")),
        }
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
        let cfg = LaunchConfig {
            grid_dim: (grid as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: shared,
        };
        // Safety: every call site passes its kernel's arguments, buffers sized for
        // this step (see forward).
        unsafe { self.gpu.launch(name, cfg, args) }
    }

    fn ensure_pools(&mut self, cache: &KvCache) -> Result<(), ModelError> {
        if cache.dtype == KvDtype::Int8 {
            return Err(unsupported(
                "an int8 K/V cache on the GPU (f32 or f16 there)",
            ));
        }
        let f16 = cache.dtype == KvDtype::F16;
        if self.pools.len() == self.layers.len() {
            if f16 != self.kv_f16 {
                return Err(unsupported("a K/V cache of another dtype than the first"));
            }
            return Ok(());
        }
        let n = cache.num_slots() * cache.row_len() * cache.dtype.bytes();
        self.kv_f16 = f16;
        let alloc = |n| {
            self.gpu
                .stream
                .alloc_zeros::<u8>(n)
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
        // Grown in powers of two: a new size means new addresses and new graphs.
        let t = t.next_power_of_two();
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
            super::fused_step::residual_parts(c.hidden_size),
        ];
        self.scratch.bufs.clear();
        for n in sizes {
            let b = self
                .gpu
                .stream
                .alloc_zeros::<f32>(n * t)
                .map_err(cuda_err("alloc"))?;
            self.scratch.bufs.push(b);
        }
        self.scratch.tokens = t;
        self.graphs.clear();
        Ok(())
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
        let mut logits = vec![Vec::new(); batch.seqs.len()];
        let wanted = self.run(batch, cache)?;
        if wanted.is_empty() {
            return Ok(logits);
        }
        let vocab = self.head().rows;
        let n = wanted.len() * vocab;
        let (dev, host) = match (&self.logits_dev, &mut self.logits_host) {
            (Some(d), Some(h)) => (d, h),
            _ => return Err(unsupported("logits buffers missing")),
        };
        self.gpu
            .stream
            .memcpy_dtoh(&dev.slice(..n), host)
            .map_err(cuda_err("download"))?;
        let host = host.as_slice().map_err(cuda_err("download"))?;
        // Copied out in parallel: at 128 sequences this is 65 MB a step.
        let mut rows: Vec<Vec<f32>> = (0..wanted.len())
            .map(|_| self.spare.pop().unwrap_or_default())
            .collect();
        use rayon::prelude::*;
        rows.par_iter_mut()
            .zip(host.par_chunks(vocab))
            .for_each(|(v, src)| {
                v.clear();
                v.extend_from_slice(src);
            });
        for (s, v) in wanted.into_iter().zip(rows) {
            logits[s] = v;
        }
        Ok(logits)
    }

    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        let wanting = || batch.seqs.iter().filter(|s| s.needs_logits);
        let on_device = |s: &SeqInput| s.pick != Pick::Row;
        if !(self.device_pick && wanting().count() > 0 && wanting().all(on_device)) {
            // Every row comes back whole: none to fetch after.
            self.last_wanted.clear();
            let logits = self.forward(batch, cache)?;
            return Ok(logits.into_iter().map(Next::Logits).collect());
        }
        let wanted = self.run(batch, cache)?;
        let picks: Vec<Pick> = wanted.iter().map(|&s| batch.seqs[s].pick).collect();
        let vocab = self.head().rows;
        let Some(logits) = &self.logits_dev else {
            return Err(unsupported("logits buffers missing"));
        };
        let out = if picks.iter().all(|p| *p == Pick::Argmax) {
            let ids = self.picker.argmax(&self.gpu, logits, vocab, picks.len())?;
            ids.into_iter().map(Next::Token).collect()
        } else {
            self.picker.picks(&self.gpu, logits, vocab, &picks)?
        };
        let mut next = vec![Next::Logits(Vec::new()); batch.seqs.len()];
        for (&s, n) in wanted.iter().zip(out) {
            next[s] = n;
        }
        self.last_wanted = wanted;
        Ok(next)
    }

    fn last_logits(&mut self, seq: usize) -> Result<Vec<f32>, ModelError> {
        let row = self
            .last_wanted
            .iter()
            .position(|&s| s == seq)
            .ok_or_else(|| unsupported("no logits of that sequence in the last step"))?;
        let (Some(logits), vocab) = (&self.logits_dev, self.head().rows) else {
            return Err(unsupported("logits buffers missing"));
        };
        let v = self
            .gpu
            .stream
            .memcpy_dtov(&logits.slice(row * vocab..(row + 1) * vocab));
        v.map_err(cuda_err("download"))
    }

    fn recycle(&mut self, logits: Vec<Vec<f32>>) {
        let room = MAX_SPARE.saturating_sub(self.spare.len());
        self.spare
            .extend(logits.into_iter().filter(|v| v.capacity() > 0).take(room));
    }
}

/// Threads of an RMSNorm block (one block a row): with llama_ops.cu's NORM_PER
/// elements each, rows up to 8192 wide are read once, all loads at once.
const NORM_THREADS: u32 = 1024;
/// Decode graphs are captured for batches up to this many sequences.
const MAX_GRAPH_TOKENS: usize = 512;
/// Logits vectors kept for reuse (each one vocabulary of f32).
const MAX_SPARE: usize = 1024;

impl CudaLlama {
    /// Runs the step on the GPU up to the logits of the sequences that want them (in
    /// `logits_dev`, one row each in order); returns those sequences' indices.
    fn run(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<usize>, ModelError> {
        let meta = AttnMeta::for_model(&self.spec, batch, cache)?;
        let t = batch.tokens.len();
        if t == 0 {
            return Ok(Vec::new());
        }
        self.ensure_pools(cache)?;
        self.ensure_scratch(t)?;
        let wanted: Vec<usize> = (0..batch.seqs.len())
            .filter(|&s| batch.seqs[s].needs_logits)
            .collect();
        let dbatch = self.upload_inputs(batch, &meta, &wanted, cache.layout.block_size)?;
        let shape = self.attn_shape();
        let part = super::paged_attention::part_len(&self.gpu, &dbatch, &shape);
        self.ensure_part(part)?;
        self.ensure_logits(wanted.len())?;
        // A decode step (one new token a sequence, each wanting logits) replays a graph
        // captured for its shape: one launch instead of ~10 a layer.
        let decode = t == batch.seqs.len() && wanted.len() == t;
        let key = GraphKey {
            tokens: t,
            width: dbatch.max_blocks,
        };
        if !(decode
            && self.graphs_on
            && t <= MAX_GRAPH_TOKENS
            && self.replay(key, &dbatch, cache)?)
        {
            self.enqueue(t, wanted.len(), &dbatch, cache)?;
        }
        Ok(wanted)
    }

    fn attn_shape(&self) -> AttnShape {
        let hd = self.cfg.head_dim;
        AttnShape {
            num_heads: self.cfg.num_heads,
            num_kv_heads: self.cfg.num_kv_heads,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window: None,
            softcap: None,
        }
    }

    /// Writes the step's inputs to the persistent input buffer (grown, and every
    /// captured graph dropped, when too small) and says where the attention arrays are.
    fn upload_inputs(
        &mut self,
        batch: &BatchInput,
        meta: &AttnMeta,
        wanted: &[usize],
        block_size: usize,
    ) -> Result<DeviceBatch, ModelError> {
        // Widths padded to 64 blocks, so that graphs are reused as contexts grow.
        let widest = DeviceBatch::widest(batch).next_multiple_of(64);
        let width = self.inputs.as_ref().map_or(0, |i| i.width).max(widest);
        let t = batch.tokens.len();
        let mut host: Vec<i32> = Vec::with_capacity(3 * t + batch.seqs.len() * (width + 1));
        host.extend(batch.tokens.iter().map(|&x| x as i32));
        host.extend(batch.slot_mapping.iter().map(|&x| x as i32));
        host.extend((0..t).map(|i| wanted.get(i).map_or(0, |&s| meta.last_row[s] as i32)));
        host.extend(DeviceBatch::host_arrays(batch, meta, width));
        let fits = self
            .inputs
            .as_ref()
            .is_some_and(|i| i.width == width && i.buf.len() >= host.len());
        if !fits {
            let cap = host.len().next_power_of_two().max(4096);
            let buf = self
                .gpu
                .stream
                .alloc_zeros::<i32>(cap)
                .map_err(cuda_err("alloc"))?;
            self.inputs = Some(StepInputs { buf, width });
            self.graphs.clear();
        }
        let inputs = self.inputs.as_mut().ok_or_else(|| unsupported("inputs"))?;
        self.gpu
            .stream
            .memcpy_htod(&host, &mut inputs.buf.slice_mut(..host.len()))
            .map_err(cuda_err("upload"))?;
        let base = inputs.buf.device_ptr(&self.gpu.stream).0 + 4 * 3 * t as u64;
        Ok(DeviceBatch::at(base, batch, width, width * block_size))
    }

    fn ensure_part(&mut self, floats: usize) -> Result<(), ModelError> {
        if self.part.as_ref().is_some_and(|p| p.len() >= floats) || floats == 0 {
            return Ok(());
        }
        let p = self
            .gpu
            .stream
            .alloc_zeros::<f32>(floats.next_power_of_two());
        self.part = Some(p.map_err(cuda_err("alloc"))?);
        self.graphs.clear();
        Ok(())
    }

    fn ensure_logits(&mut self, rows: usize) -> Result<(), ModelError> {
        let n = rows.max(1) * self.head().rows;
        if self.logits_dev.as_ref().is_some_and(|d| d.len() >= n) {
            return Ok(());
        }
        let n = rows.max(1).next_power_of_two() * self.head().rows;
        self.logits_dev = Some(
            self.gpu
                .stream
                .alloc_zeros::<f32>(n)
                .map_err(cuda_err("alloc"))?,
        );
        // Safety: pinned host memory the driver allocates; written only by copies on
        // this stream, read after they complete (as_slice synchronizes).
        let host = unsafe { self.gpu.ctx.alloc_pinned::<f32>(n) };
        self.logits_host = Some(host.map_err(cuda_err("pinned alloc"))?);
        self.graphs.clear();
        Ok(())
    }

    /// Replays (capturing first if new) the decode graph of `key`; false when capture
    /// failed, after which graphs are off and the step runs launch by launch.
    fn replay(
        &mut self,
        key: GraphKey,
        dbatch: &DeviceBatch,
        cache: &KvCache,
    ) -> Result<bool, ModelError> {
        if !self.graphs.contains_key(&key) {
            let st = self.gpu.stream.clone();
            st.begin_capture(
                cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
            .map_err(cuda_err("graph capture"))?;
            let body = self.enqueue(key.tokens, key.tokens, dbatch, cache);
            let flags = cudarc::driver::sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH;
            let graph = st.end_capture(flags);
            match (body, graph) {
                (Ok(()), Ok(Some(g))) => {
                    self.graphs.insert(key, Graph(g));
                }
                (body, graph) => {
                    tracing::warn!(
                        body = ?body.err(),
                        graph = ?graph.err(),
                        "CUDA graph capture failed; decode steps run launch by launch"
                    );
                    self.graphs_on = false;
                    self.graphs.clear();
                    return Ok(false);
                }
            }
        }
        let g = self.graphs.get(&key).ok_or_else(|| unsupported("graph"))?;
        g.0.launch().map_err(cuda_err("graph launch"))?;
        Ok(true)
    }

    /// RMSNorm, the q/k/v product, then bias, q/k norms and RoPE (`qkv_finish`): q into
    /// Q, k and v into the layer's `pools`.
    fn qkv(&self, w: &Layer, pools: (u64, u64), step: &StepPtrs) -> Result<(), ModelError> {
        let (c, s, t) = (&self.cfg, &step.s, step.t);
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        // Safety: QKV holds t * (heads + 2 kv heads) * head_dim.
        unsafe { self.norm_matmul(&w.attn_norm, &w.wqkv, s[QKV], t)? };
        let bias = w.qkv_bias.as_ref().map_or(0, |b| self.ptr(b));
        let (qn, kn) = w
            .qk_norm
            .as_ref()
            .map_or((0, 0), |(q, k)| (self.ptr(q), self.ptr(k)));
        let (nh32, nkv32, hd32) = (nh as i32, nkv as i32, hd as i32);
        let (eps, neox) = (c.rms_eps, i32::from(c.neox_rope));
        self.launch(
            if self.kv_f16 {
                "qkv_finish_kvf16"
            } else {
                "qkv_finish"
            },
            t * (nh + 2 * nkv).div_ceil(8),
            256,
            (8 * hd * 4) as u32,
            &[
                &s[Q],
                &pools.0,
                &pools.1,
                &s[QKV],
                &bias,
                &qn,
                &kn,
                &eps,
                &step.positions,
                &step.slots,
                &step.inv_freq,
                &nh32,
                &nkv32,
                &hd32,
                &neox,
            ],
        )
    }

    /// The o product into the residual stream, then RMSNorm, gate/up and SiLU, and the
    /// down product into the residual stream.
    fn mlp(&self, w: &Layer, step: &StepPtrs) -> Result<(), ModelError> {
        let (s, t) = (&step.s, step.t);
        // Safety: A holds t * heads * head_dim, X t * hidden.
        unsafe { self.matmul(s[A], &w.wo, s[X], t, true)? };
        // Safety: GU holds t * 2 ffn, ACT t * ffn.
        unsafe { self.mlp_up(&w.ffn_norm, &w.w_gate_up, s[GU], s[ACT], t)? };
        // Safety: ACT holds t * ffn.
        unsafe { self.matmul(s[ACT], &w.w_down, s[X], t, true) }
    }

    /// Enqueues the whole step on the stream, from the token ids in the input buffer
    /// to the logits of the `wanted` sequences in `logits_dev`; allocates nothing (so
    /// that it can be captured).
    fn enqueue(
        &self,
        t: usize,
        wanted: usize,
        dbatch: &DeviceBatch,
        cache: &KvCache,
    ) -> Result<(), ModelError> {
        let inputs = self.inputs.as_ref().ok_or_else(|| unsupported("inputs"))?;
        let base = self.ptr(&inputs.buf);
        let (ids, slots, rows) = (base, base + 4 * t as u64, base + 8 * t as u64);
        let positions = dbatch.positions;
        let s: Vec<u64> = self.scratch.bufs.iter().map(|b| self.ptr(b)).collect();
        let shape = self.attn_shape();
        let (part, part_len) = self
            .part
            .as_ref()
            .map_or((0, 0), |p| (self.ptr(p), p.len()));
        self.embed_tokens(ids, t, s[X])?;
        let step = StepPtrs {
            s,
            t,
            positions,
            slots,
            inv_freq: self.ptr(&self.inv_freq),
        };
        let fused = self.fusable && self.fuse && self.products.gemv_on() && t <= GEMV_MAX_TOKENS;
        let mut norm_in = if fused {
            Some(self.fused_prep(&step)?)
        } else {
            None
        };
        for (i, w) in self.layers.iter().enumerate() {
            let pools = (self.ptr(&self.pools[i].0), self.ptr(&self.pools[i].1));
            match norm_in {
                Some(x) => self.fused_qkv(w, pools, x, &step)?,
                None => self.qkv(w, pools, &step)?,
            }
            let bufs = AttnBuffers {
                out: step.s[A],
                out_bf16: self.bf16() == 1,
                q: step.s[Q],
                k_pool: pools.0,
                v_pool: pools.1,
                kv_f16: self.kv_f16,
                part,
                part_len,
            };
            // Safety: Q and A hold t * heads * head_dim; AttnMeta checked the slots and
            // block tables against the pool the engine sized.
            unsafe {
                attend(
                    &self.gpu,
                    bufs,
                    cache.layout.block_size,
                    dbatch,
                    shape,
                    self.variant,
                )?
            };
            match norm_in {
                Some(_) => norm_in = Some(self.fused_mlp(w, self.layers.get(i + 1), &step)?),
                None => self.mlp(w, &step)?,
            }
        }
        let s = &step.s;
        if wanted == 0 {
            return Ok(());
        }
        let (norm, bf16, eps) = (self.ptr(&self.norm), self.bf16(), self.cfg.rms_eps);
        let h32 = self.cfg.hidden_size as i32;
        self.launch(
            "rms_norm",
            wanted,
            NORM_THREADS,
            0,
            &[&s[LOGITS_IN], &bf16, &s[X], &rows, &norm, &h32, &eps],
        )?;
        let out = self
            .logits_dev
            .as_ref()
            .ok_or_else(|| unsupported("logits buffer"))?;
        // Safety: LOGITS_IN holds wanted <= t rows of hidden; out holds wanted * vocab.
        unsafe { self.matmul(s[LOGITS_IN], self.head(), self.ptr(out), wanted, false) }
    }

    /// X = the embedding rows of the step's `t` token ids (at `ids` on the device).
    fn embed_tokens(&self, ids: u64, t: usize, x: u64) -> Result<(), ModelError> {
        let [seg] = self.embed.segs.as_slice() else {
            return Err(unsupported("an embedding matrix in several types"));
        };
        let w = self.weight_ref(seg, self.embed.cols);
        if let WeightKind::Quant { .. } = w.kind {
            // Safety: ids holds t token ids the engine checked against the vocabulary;
            // X holds t * hidden.
            return unsafe { dequant_rows(&self.gpu, w, ids, t, x) };
        }
        let (bf16, h32) = (
            i32::from(w.kind == WeightKind::Bf16),
            self.cfg.hidden_size as i32,
        );
        self.launch("embedding", t, 256, 0, &[&x, &w.ptr, &bf16, &ids, &h32])
    }
}
