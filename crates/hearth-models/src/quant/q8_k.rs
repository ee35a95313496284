//! Q8_K activation rows (256 values, an f32 scale and 16 sums of 16) for the k-quant
//! kernels: candle's quantizer is scalar with a libm `round` per value, a tenth of a
//! batched Q4_K matmul; this one is vectorised and writes the same bytes.

use candle_core::quantized::k_quants::{BlockQ8K, QK_K};
use candle_core::quantized::GgmlType;

// Byte offsets inside candle's `repr(C)` Q8_K block (its fields are crate-private).
const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 4 + QK_K;
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 4 + QK_K + 2 * QK_K / 16);

/// An activation block's scale, quants and 16 sums of 16 (what the k-quant kernels read).
pub(crate) fn q8k_parts(a: &BlockQ8K) -> (f32, &[i8; QK_K], &[i16; 16]) {
    let p = a as *const BlockQ8K as *const u8;
    // SAFETY: offsets inside the block, whose size is checked above; i16 sums sit at an
    // even offset of a 4-aligned block.
    unsafe {
        (
            (p as *const f32).read(),
            &*(p.add(Q8K_QS) as *const [i8; QK_K]),
            &*(p.add(Q8K_BSUMS) as *const [i16; 16]),
        )
    }
}

/// Quantizes `x` (a multiple of 256 values) into `out`, as candle's
/// `BlockQ8K::from_float` does.
pub fn quantize_row_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    assert_eq!(x.len(), out.len() * QK_K, "Q8_K row length");
    #[cfg(target_arch = "x86_64")]
    if super::Kernel::Avx2.is_available() {
        for (x, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            // SAFETY: AVX2 checked; `x` holds 256 values and `b` is one whole block.
            unsafe { avx2::quantize_block(x, b) };
        }
        return;
    }
    BlockQ8K::from_float(x, out)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_block(x: &[f32], b: &mut BlockQ8K) {
        let p = x.as_ptr();
        let out = b as *mut BlockQ8K as *mut u8;
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        for i in 0..QK_K / 8 {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))));
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
        if amax == 0.0 {
            std::ptr::write_bytes(out, 0, std::mem::size_of::<BlockQ8K>());
            return;
        }
        // candle keeps the first value of the largest magnitude, with its sign.
        let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127.0 / max;
        let scale = _mm256_set1_ps(iscale);
        // round(): add copysign(0.5 - 2^-25, v), then truncate (as `simd::quantize_block`).
        let half = _mm256_set1_ps(0.499_999_97);
        let qs = out.add(Q8K_QS) as *mut __m256i;
        let bsums = out.add(Q8K_BSUMS) as *mut i16;
        for g in 0..QK_K / 32 {
            let q: [__m256i; 4] = std::array::from_fn(|j| {
                let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(32 * g + 8 * j)), scale);
                let r = _mm256_add_ps(v, _mm256_or_ps(_mm256_and_ps(v, sign), half));
                // |v| <= 127 up to rounding; the saturating packs below clamp the rest.
                _mm256_cvttps_epi32(r)
            });
            for h in 0..2 {
                let s = _mm256_add_epi32(q[2 * h], q[2 * h + 1]);
                let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                let s = _mm_hadd_epi32(s, s);
                let s = _mm_hadd_epi32(s, s);
                bsums
                    .add(2 * g + h)
                    .write_unaligned(_mm_cvtsi128_si32(s) as i16);
            }
            // Packing interleaves 128-bit lanes; the permute puts the bytes back in order.
            let p16 = [
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            ];
            let p8 = _mm256_packs_epi16(p16[0], p16[1]);
            let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(qs.add(g), p8);
        }
        (out as *mut f32).write_unaligned(1.0 / iscale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(b: &[BlockQ8K]) -> &[u8] {
        // SAFETY: plain `repr(C)` bytes.
        unsafe { std::slice::from_raw_parts(b.as_ptr() as *const u8, std::mem::size_of_val(b)) }
    }

    /// Same bytes as candle's quantizer: random rows, ties at .5 steps, a zero block, a
    /// negative largest value, and two largest magnitudes of opposite sign.
    #[test]
    fn same_bytes_as_candle() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut rows: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                (0..QK_K)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * (i as f32 + 0.5)
                    })
                    .collect()
            })
            .collect();
        rows.push(vec![0.0; QK_K]);
        rows.push((0..QK_K).map(|i| (i as f32 - 128.0) * 0.5).collect());
        rows.push((0..QK_K).map(|i| -(i as f32) / 2.0).collect());
        let mut tie = vec![0.25f32; QK_K];
        (tie[3], tie[9]) = (-2.0, 2.0);
        rows.push(tie);
        for (i, x) in rows.iter().enumerate() {
            let (mut ours, mut theirs) = (vec![BlockQ8K::zeros()], vec![BlockQ8K::zeros()]);
            quantize_row_q8k(x, &mut ours);
            BlockQ8K::from_float(x, &mut theirs);
            assert_eq!(bytes(&ours), bytes(&theirs), "row {i}");
        }
    }
}
