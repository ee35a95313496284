//! Quantizing f32 weight matrices at load or conversion time (GGML block types).

use crate::quant::Linear;
use crate::ModelError;
/// Re-exported so the CLI can name quantization types without depending on candle.
pub use candle_core::quantized::GgmlDType;
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{CpuStorage, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// The type names `--quantization` accepts, as llama.cpp spells them.
pub const QUANT_NAMES: &[&str] = &[
    "f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
];

/// Parses a llama.cpp type name ("q8_0", "Q4_K", "q4_k_m" is read as q4_k).
pub fn parse_quant_type(s: &str) -> Result<GgmlDType, ModelError> {
    let t = s.trim().to_ascii_lowercase();
    // llama.cpp's mixes (q4_k_m, q5_k_s) name their main type first.
    let t = t
        .strip_suffix("_m")
        .or_else(|| t.strip_suffix("_s"))
        .unwrap_or(&t);
    Ok(match t {
        "f32" => GgmlDType::F32,
        "f16" => GgmlDType::F16,
        "q4_0" => GgmlDType::Q4_0,
        "q4_1" => GgmlDType::Q4_1,
        "q5_0" => GgmlDType::Q5_0,
        "q5_1" => GgmlDType::Q5_1,
        "q8_0" => GgmlDType::Q8_0,
        "q2_k" => GgmlDType::Q2K,
        "q3_k" => GgmlDType::Q3K,
        "q4_k" => GgmlDType::Q4K,
        "q5_k" => GgmlDType::Q5K,
        "q6_k" => GgmlDType::Q6K,
        _ => {
            return Err(ModelError::Unsupported(format!(
                "quantization `{s}` (one of {})",
                QUANT_NAMES.join(", ")
            )))
        }
    })
}

/// The type a `[rows, cols]` matrix actually gets: `want` when `cols` is a multiple of
/// its block, else Q8_0 (block 32) when that fits, else F32 — llama.cpp falls back the
/// same way for rows that k-quants' 256-wide blocks do not divide.
pub fn fitting_type(want: GgmlDType, cols: usize) -> GgmlDType {
    if cols.is_multiple_of(want.block_size()) {
        want
    } else if cols.is_multiple_of(GgmlDType::Q8_0.block_size()) && want != GgmlDType::F16 {
        GgmlDType::Q8_0
    } else {
        GgmlDType::F32
    }
}

/// Bytes a `[rows, cols]` matrix takes once quantized to `want` (after the fallback).
pub fn quantized_bytes(want: GgmlDType, rows: usize, cols: usize) -> u64 {
    let t = fitting_type(want, cols);
    (rows * cols / t.block_size() * t.type_size()) as u64
}

/// Quantizes one f32 matrix (its last dimension is the one blocks run along).
pub fn quantize_matrix(t: &Tensor, want: GgmlDType) -> Result<QTensor, ModelError> {
    let cols = t.dims().last().copied().unwrap_or(0);
    quantize_as(t, fitting_type(want, cols))
}

/// Quantizes `t` to exactly `dtype`, groups of rows in parallel: blocks run along the
/// last dimension, so the groups' blocks laid end to end are the whole tensor's. (Candle
/// quantizes on one thread; k-quants' scale search made loading a 3B model take minutes.)
pub fn quantize_as(t: &Tensor, dtype: GgmlDType) -> Result<QTensor, ModelError> {
    let (rows, cols) = match t.dims() {
        [rows, cols] => (*rows, *cols),
        _ => return Ok(QTensor::quantize(t, dtype)?),
    };
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let values = match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => &v[a..b],
        _ => return Ok(QTensor::quantize(&t, dtype)?),
    };
    // Each group becomes a tensor of its own: candle's quantizer reads a view's storage
    // from its start, not from the view's offset.
    let chunk = rows.div_ceil(rayon::current_num_threads() * 4).max(1);
    let parts = values
        .par_chunks(chunk * cols.max(1))
        .map(|part| {
            let part = Tensor::from_slice(part, (part.len() / cols.max(1), cols), &t.device())?;
            Ok(QTensor::quantize(&part, dtype)?.data()?.into_owned())
        })
        .collect::<Result<Vec<Vec<u8>>, candle_core::Error>>()?;
    drop(storage);
    let storage = QStorage::from_data(Cow::Owned(parts.concat()), &t.device(), dtype)?;
    Ok(QTensor::new(storage, t.shape())?)
}

/// A projection weight as the decoder runs it: dense f32 without `want`, else quantized
/// (Q4_1 and Q8_0 then run on hearth's own kernels, see `Linear::new`).
pub fn linear_from_f32(t: Tensor, want: Option<GgmlDType>) -> Result<Linear, ModelError> {
    match want {
        None | Some(GgmlDType::F32) => Ok(Linear::Candle(QMatMul::Tensor(t))),
        Some(w) => Ok(Linear::new(Arc::new(quantize_matrix(&t, w)?), false)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Rows quantized in parallel groups give candle's bytes exactly (37 rows: groups
    /// of unequal size).
    #[test]
    fn parallel_quantization_equals_candles() {
        let vals: Vec<f32> = (0..37 * 256)
            .map(|i| ((i * 7919) % 1000) as f32 / 5e3 - 0.1)
            .collect();
        let t = Tensor::from_vec(vals, (37, 256), &Device::Cpu).expect("t");
        for dtype in [
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::Q8_0,
            GgmlDType::Q4_1,
            GgmlDType::F16,
        ] {
            let ours = quantize_as(&t, dtype).expect("ours");
            let theirs = QTensor::quantize(&t, dtype).expect("theirs");
            assert_eq!(ours.shape(), theirs.shape());
            assert_eq!(ours.dtype(), dtype);
            assert!(
                ours.data().expect("a") == theirs.data().expect("b"),
                "{dtype:?}"
            );
        }
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!(parse_quant_type("Q8_0").expect("q8_0"), GgmlDType::Q8_0);
        assert_eq!(parse_quant_type("q4_k_m").expect("q4_k"), GgmlDType::Q4K);
        assert_eq!(parse_quant_type("q6_k").expect("q6_k"), GgmlDType::Q6K);
        assert!(parse_quant_type("q7_0").is_err());
    }

    #[test]
    fn falls_back_when_blocks_do_not_divide_rows() {
        assert_eq!(fitting_type(GgmlDType::Q4K, 512), GgmlDType::Q4K);
        assert_eq!(fitting_type(GgmlDType::Q4K, 64), GgmlDType::Q8_0);
        assert_eq!(fitting_type(GgmlDType::Q8_0, 48), GgmlDType::F32);
        // Q8_0: 34 bytes per 32 weights.
        assert_eq!(quantized_bytes(GgmlDType::Q8_0, 10, 64), 10 * 2 * 34);
        assert_eq!(quantized_bytes(GgmlDType::F16, 3, 5), 30);
    }

    /// Each type's matmul (hearth's kernels for Q4_1/Q8_0, candle's for the rest) stays
    /// near the f32 product on a 256-wide matrix, where k-quants need no fallback.
    /// Relative errors measured (max |err| / max |y|): Q8_0 0.007, Q6K 0.013, Q5K 0.040,
    /// Q4K 0.069, Q4_1 0.070, Q4_0 0.086; bounds leave ~1.5-3x.
    #[test]
    fn quantized_linears_track_the_f32_product() {
        use candle_core::Module;
        let dev = &Device::Cpu;
        // Deterministic pseudo-random values (xorshift), so the bounds are not flaky.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut fill = |n: usize| crate::test_data::xorshift_floats(&mut state, n);
        let w = Tensor::from_vec(fill(32 * 256), (32, 256), dev).expect("w");
        let x = Tensor::from_vec(fill(3 * 256), (3, 256), dev).expect("x");
        let want = x.matmul(&w.t().expect("t")).expect("mm");
        let scale: f32 = want
            .abs()
            .and_then(|t| t.max_all()?.to_scalar())
            .expect("max");
        for (q, bound) in [
            (GgmlDType::Q8_0, 0.02),
            (GgmlDType::Q6K, 0.03),
            (GgmlDType::Q5K, 0.07),
            (GgmlDType::Q4K, 0.12),
            (GgmlDType::Q4_1, 0.12),
            (GgmlDType::Q4_0, 0.14),
        ] {
            let lin = linear_from_f32(w.clone(), Some(q)).expect("linear");
            let got = lin.forward(&x).expect("forward");
            let err: f32 = (got - &want)
                .and_then(|d| d.abs()?.max_all()?.to_scalar())
                .expect("err");
            eprintln!("{q:?}: relative error {:.4}", err / scale);
            assert!(err / scale < bound, "{q:?}: relative error {}", err / scale);
        }
    }

    #[test]
    fn q8_0_matrix_stays_close() {
        let t = Tensor::randn(0f32, 1f32, (8, 64), &Device::Cpu).expect("randn");
        let q = quantize_matrix(&t, GgmlDType::Q8_0).expect("quantize");
        assert_eq!(q.dtype(), GgmlDType::Q8_0);
        let back = q.dequantize(&Device::Cpu).expect("dequantize");
        let err: f32 = (back - &t)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar())
            .expect("err");
        // Half a step of a 127-level scale over |w| <= ~4.
        assert!(err < 4.0 / 127.0, "{err}");
    }
}
