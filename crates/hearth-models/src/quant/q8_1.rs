//! Activations quantized to ggml's Q8_1: 32 int8 values per block with scale `d` and
//! `s = d * sum(qs)`, computed exactly as ggml's (and candle's) `quantize_row_q8_1`, so
//! Q4_1 x Q8_1 products match candle's scalar path up to float summation order.

use super::kernel::Kernel;
use half::f16;

/// Values per block (Q4_1 and Q8_1 alike).
pub const QK: usize = 32;

/// One Q8_1 block. `d` and `s` hold the f16-rounded values ggml stores, widened to f32
/// once here rather than in every dot product.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(8))]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

impl BlockQ8_1 {
    pub const ZERO: BlockQ8_1 = BlockQ8_1 {
        d: 0.0,
        s: 0.0,
        qs: [0; QK],
    };
}

/// Quantizes `x` (a multiple of 32 long) into `out` (`x.len() / 32` blocks).
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    #[cfg(target_arch = "x86_64")]
    if Kernel::Avx2.is_available() {
        // SAFETY: the CPU has the features.
        if std::arch::is_x86_feature_detected!("avx512f") {
            unsafe { quantize_avx512(x, out) };
        } else {
            unsafe { quantize_avx2(x, out) };
        }
        return;
    }
    quantize(x, out)
}

/// `quantize` with the per-block work in AVX2 (`simd::quantize_block`): same bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        // SAFETY: 32 floats in, 32 bytes out.
        let (d, sum) = unsafe { super::simd::quantize_block(xs.as_ptr(), b.qs.as_mut_ptr()) };
        scale_and_sum(b, d, sum);
    }
}

/// `quantize` with the per-block work on 16-lane vectors (`simd::quantize_block_512`):
/// same bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn quantize_avx512(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        // SAFETY: 32 floats in, 32 bytes out.
        let (d, sum) = unsafe { super::simd::quantize_block_512(xs.as_ptr(), b.qs.as_mut_ptr()) };
        scale_and_sum(b, d, sum);
    }
}

/// A block's `d` and `s` as ggml stores them: rounded to f16 (F16C: `half`'s f16
/// product is a software one, ~1% of a decode step's samples).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "f16c")]
unsafe fn scale_and_sum(b: &mut BlockQ8_1, d: f32, sum: i32) {
    use super::simd::round_to_f16;
    b.d = round_to_f16(d);
    // The product of two f16 values is exact in f32, so one rounding gives the f16
    // product.
    b.s = round_to_f16(round_to_f16(sum as f32) * b.d);
}

fn quantize(x: &[f32], out: &mut [BlockQ8_1]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        let d16 = f16::from_f32(d);
        b.d = d16.to_f32();
        // ggml rounds the sum to f16 before scaling, and the product to f16 again.
        b.s = (f16::from_f32(sum as f32) * d16).to_f32();
    }
}
