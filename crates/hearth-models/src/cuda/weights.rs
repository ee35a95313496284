//! Weights as the GPU holds them: bf16 (or f32 for exact checks), uploaded from a CPU
//! llama's dense f32 matrices.

use candle_core::quantized::QMatMul;
use candle_core::Tensor;
use cudarc::driver::CudaSlice;

use super::llama::unsupported;
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
}

/// A `[rows, cols]` matrix on the device (row-major).
pub(super) struct Mat {
    pub(super) w: Weights,
    pub(super) rows: usize,
    pub(super) cols: usize,
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
