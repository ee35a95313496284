//! Weights as the GPU holds them: bf16 (or f32 for exact checks), or a GGUF file's
//! block-quantized types as they are stored (`quant_type.rs`), uploaded from a CPU
//! llama's matrices.

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::Tensor;
use cudarc::driver::{CudaSlice, CudaStream};

use super::cuda_err;
use super::llama::unsupported;
use super::quant_type::QuantType;
use crate::llama::Llama;
use crate::quant::Linear;
use crate::ModelError;

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

pub(super) enum Weights {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<u16>),
    /// Blocks in the device layout of `QuantType::to_device_layout`.
    Quant(QuantType, CudaSlice<u8>),
}

/// Consecutive rows of a matrix held in one type.
pub(super) struct Segment {
    pub(super) w: Weights,
    pub(super) rows: usize,
}

/// A `[rows, cols]` matrix on the device (row-major), in one segment or, where the
/// file stacks matrices of different quantized types (q/k in Q4_K, v in Q6_K), several.
pub(super) struct Mat {
    pub(super) segs: Vec<Segment>,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl Mat {
    /// The quantized types this matrix holds.
    pub(super) fn quant_types(&self) -> impl Iterator<Item = QuantType> + '_ {
        self.segs.iter().filter_map(|s| match s.w {
            Weights::Quant(t, _) => Some(t),
            _ => None,
        })
    }
}

/// A part of a matrix on the host, before upload.
enum HostPart {
    Dense(Vec<f32>),
    Quant(QuantType, Vec<u8>),
}

/// A linear layer's weights on the host: a stored quantized tensor of a type the GPU
/// multiplies as it is, or else f32.
fn host_part(l: &Linear) -> Result<(HostPart, usize, usize), ModelError> {
    let quant = |q: &QTensor| -> Result<(HostPart, usize, usize), ModelError> {
        let (rows, cols) = q.shape().dims2()?;
        match QuantType::from_ggml(q.dtype()) {
            Some(t) if cols.is_multiple_of(t.block()) => {
                Ok((HostPart::Quant(t, q.data()?.into_owned()), rows, cols))
            }
            _ => {
                let t = q.dequantize(&candle_core::Device::Cpu)?;
                Ok((HostPart::Dense(host_f32(&t)?), rows, cols))
            }
        }
    };
    match l {
        Linear::Candle(QMatMul::QTensor(q)) => quant(q),
        Linear::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
            let (rows, cols) = t.dims2()?;
            Ok((HostPart::Dense(host_f32(t)?), rows, cols))
        }
        Linear::Quantized(_) => Err(unsupported(
            "load the model's matrices as stored or dense, not packed for the CPU",
        )),
    }
}

/// The rows of `parts` stacked into one device matrix: runs of parts of the same
/// quantized type become one segment each, everything else is held as `dtype`.
pub(super) fn upload_stacked(
    stream: &std::sync::Arc<CudaStream>,
    parts: &[&Linear],
    dtype: GpuDtype,
) -> Result<Mat, ModelError> {
    let (mut segs, mut rows, mut cols) = (Vec::new(), 0, 0);
    // The run being gathered: its type (None: dense) and rows.
    let mut run: Option<(Option<QuantType>, HostPart, usize)> = None;
    for l in parts {
        let (part, r, c) = host_part(l)?;
        if rows > 0 && c != cols {
            return Err(unsupported("stacked matrices of different widths"));
        }
        (rows, cols) = (rows + r, c);
        let ty = match &part {
            HostPart::Quant(t, _) => Some(*t),
            HostPart::Dense(_) => None,
        };
        run = match (run, part) {
            (Some((rt, HostPart::Dense(mut a), n)), HostPart::Dense(b)) if rt.is_none() => {
                a.extend(b);
                Some((None, HostPart::Dense(a), n + r))
            }
            (Some((rt, HostPart::Quant(t, mut a), n)), HostPart::Quant(_, b)) if rt == ty => {
                a.extend(b);
                Some((rt, HostPart::Quant(t, a), n + r))
            }
            (prev, part) => {
                if let Some((_, p, n)) = prev {
                    segs.push(upload_part(stream, p, n, dtype)?);
                }
                Some((ty, part, r))
            }
        };
    }
    if let Some((_, p, n)) = run {
        segs.push(upload_part(stream, p, n, dtype)?);
    }
    Ok(Mat { segs, rows, cols })
}

fn upload_part(
    stream: &std::sync::Arc<CudaStream>,
    part: HostPart,
    rows: usize,
    dtype: GpuDtype,
) -> Result<Segment, ModelError> {
    let up = cuda_err("upload");
    let w = match (part, dtype) {
        (HostPart::Quant(t, bytes), _) => Weights::Quant(
            t,
            stream
                .memcpy_stod(&t.to_device_layout(&bytes))
                .map_err(up)?,
        ),
        (HostPart::Dense(host), GpuDtype::F32) => {
            Weights::F32(stream.memcpy_stod(&host).map_err(up)?)
        }
        (HostPart::Dense(host), GpuDtype::Bf16) => {
            use rayon::prelude::*;
            let bits: Vec<u16> = host.par_iter().map(|&f| bf16_bits(f)).collect();
            drop(host);
            Weights::Bf16(stream.memcpy_stod(&bits).map_err(up)?)
        }
    };
    Ok(Segment { w, rows })
}

/// Whether two linear layers are the same weights (a tied embedding and LM head).
pub(super) fn same_weights(a: &Linear, b: &Linear) -> bool {
    match (a, b) {
        (Linear::Candle(QMatMul::QTensor(x)), Linear::Candle(QMatMul::QTensor(y))) => {
            std::sync::Arc::ptr_eq(x, y)
        }
        (Linear::Candle(QMatMul::Tensor(x)), Linear::Candle(QMatMul::Tensor(y))) => {
            x.id() == y.id()
        }
        (Linear::Quantized(x), Linear::Quantized(y)) => std::sync::Arc::ptr_eq(x, y),
        _ => false,
    }
}

pub(super) fn host_f32(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}

/// The f32 tensor of a dense (dequantized) linear layer.
pub(super) fn dense(l: &Linear) -> Result<&Tensor, ModelError> {
    match l {
        Linear::Candle(QMatMul::Tensor(t)) => Ok(t),
        _ => Err(unsupported(
            "load the model with dense f32 matrices (dequantize: true)",
        )),
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

/// A quantized tensor uploaded in the device layout, with a reference to it: for the
/// kernel checks (`examples/cuda_quant_check.rs`). None for a type without GPU kernels.
pub fn upload_quant(
    gpu: &super::Gpu,
    q: &QTensor,
) -> Result<Option<(CudaSlice<u8>, super::product::WeightRef)>, ModelError> {
    let Some(ty) = QuantType::from_ggml(q.dtype()) else {
        return Ok(None);
    };
    let (rows, cols) = q.shape().dims2()?;
    let dev = gpu
        .stream
        .memcpy_stod(&ty.to_device_layout(&q.data()?))
        .map_err(cuda_err("upload"))?;
    gpu.load_quant_kernels(&[ty])?;
    let ptr = {
        use cudarc::driver::DevicePtr;
        dev.device_ptr(&gpu.stream).0
    };
    let w = super::product::WeightRef {
        ptr,
        rows,
        cols,
        kind: super::product::WeightKind::Quant {
            ty,
            meta: ptr + ty.meta_offset(rows, cols) as u64,
        },
    };
    Ok(Some((dev, w)))
}
