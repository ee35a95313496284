//! Every block type held by hearth (`Linear::Quantized`) against candle's `QMatMul` on the
//! same quantized weights, and its rows against candle's dequantization.

use super::*;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::sync::Arc;

const TYPES: [GgmlDType; 10] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

/// Deterministic values in [-scale, scale) (xorshift).
pub(super) fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect()
}

fn quantized(dtype: GgmlDType, n: usize, k: usize) -> Arc<QTensor> {
    let w = Tensor::from_vec(values(7, n * k, 0.1), (n, k), &Device::Cpu).expect("w");
    Arc::new(QTensor::quantize(&w, dtype).expect("quantize"))
}

/// Same blocks, same activation quantizer, same dot products: only the summation order
/// of candle's kernels may differ (its x86 k-quant path tiles differently). The 32-value
/// types use a row length that is not a multiple of 256: on CPUs with AVX512-VNNI candle
/// repacks those and quantizes activations to Q8_K instead (other numerics).
#[test]
fn held_matrices_equal_candles_matmul() {
    let n = 48;
    for dtype in TYPES {
        let k = if dtype.block_size() == 256 { 512 } else { 544 };
        let t = quantized(dtype, n, k);
        let lin = Linear::new(t.clone(), false).expect("linear");
        assert!(
            matches!(&lin, Linear::Quantized(m) if m.dtype() == dtype && m.n() == n && m.k() == k),
            "{dtype:?} is held by hearth"
        );
        for m in [1, 5] {
            let x = Tensor::from_vec(values(11 + m as u64, m * k, 1.0), (m, k), &Device::Cpu)
                .expect("x");
            let ours = lin.forward(&x).expect("ours").flatten_all().expect("flat");
            let theirs = QMatMul::from_arc(t.clone())
                .expect("q")
                .forward(&x)
                .expect("theirs");
            let theirs = theirs.flatten_all().expect("flat");
            let (a, b) = (
                ours.to_vec1::<f32>().expect("a"),
                theirs.to_vec1::<f32>().expect("b"),
            );
            let scale = b.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (p - q).abs() <= 2e-4 * scale,
                    "{dtype:?} m={m} [{i}]: {p} vs {q}"
                );
            }
        }
    }
}

#[test]
fn rows_are_the_dequantized_rows() {
    let (n, k) = (6, 256);
    for dtype in TYPES {
        let t = quantized(dtype, n, k);
        let dense = t.dequantize(&Device::Cpu).expect("dequantize");
        let lin = Linear::new(t, false).expect("linear");
        let ids = Tensor::new(&[[5u32, 0], [2, 5]], &Device::Cpu).expect("ids");
        let rows = lin.embedding(&ids).expect("rows");
        assert_eq!(rows.dims(), &[2, 2, k]);
        let want = dense
            .index_select(&ids.flatten_all().expect("flat"), 0)
            .expect("select");
        let diff = (rows.reshape((4, k)).expect("r") - want)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .expect("diff");
        assert!(diff <= 1e-6, "{dtype:?}: rows differ by {diff}");
        // An id past the vocabulary is an error, not a panic.
        let bad = Tensor::new(&[6u32], &Device::Cpu).expect("bad");
        assert!(lin.embedding(&bad).is_err(), "{dtype:?}");
    }
}
