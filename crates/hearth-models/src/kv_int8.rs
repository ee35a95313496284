//! The int8 K/V cache's rounding: each KV head's part of a token's K (or V) row is
//! stored as `head_dim` signed bytes and one f32 scale (symmetric, `scale = max|x| /
//! 127`), so a value is off by at most half a scale step (`max|x| / 254`) whatever the
//! row's magnitude, with no calibration. Half the bytes of f16 (plus 4 a head): twice
//! the tokens for the same budget, and half the bytes a decode step's attention reads.

/// The largest stored magnitude.
const LEVELS: f32 = 127.0;

/// One head's values rounded to int8: its scale (the step between two stored levels; 0
/// for an all-zero head; non-finite values are left out of the maximum, and stored as 0
/// or ±127), and each value's nearest level into `out` (as long as `values`).
pub(crate) fn quantize_head(values: &[f32], out: &mut [i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected.
        return unsafe { quantize_head_avx2(values, out) };
    }
    quantize_head_portable(values, out)
}

/// `quantize_head_portable`'s operations on 8 lanes (the same bits): LLVM left the
/// portable loops value by value, 7x the f16 write's time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_head_avx2(values: &[f32], out: &mut [i8]) -> f32 {
    use std::arch::x86_64::*;
    let n = values.len().min(out.len());
    let main = n / 8 * 8;
    let p = values.as_ptr();
    let magnitude = _mm256_set1_epi32(0x7FFF_FFFF);
    let inf = _mm256_set1_epi32(0x7F80_0000);
    let mut max = _mm256_setzero_si256();
    for i in (0..main).step_by(8) {
        let bits = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(p.add(i))), magnitude);
        let finite = _mm256_cmpgt_epi32(inf, bits);
        max = _mm256_max_epu32(max, _mm256_and_si256(bits, finite));
    }
    let mut lanes = [0u32; 8];
    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, max);
    let head_max = lanes.iter().copied().fold(0, u32::max);
    let tail_max = max_magnitude_bits(&values[main..n]);
    let scale = f32::from_bits(head_max.max(tail_max)) / LEVELS;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let (vinv, top, bottom) = (
        _mm256_set1_ps(inv),
        _mm256_set1_ps(LEVELS),
        _mm256_set1_ps(-LEVELS),
    );
    let (half, sign) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.0));
    let q = out.as_mut_ptr();
    for i in (0..main).step_by(8) {
        let r = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vinv);
        // NaN to 0 first (min/max would pass it on as a bound); then clamped.
        let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
        let r = _mm256_max_ps(_mm256_min_ps(r, top), bottom);
        let r = _mm256_add_ps(r, _mm256_or_ps(half, _mm256_and_ps(r, sign)));
        let w = _mm256_cvttps_epi32(r);
        let w16 = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
        _mm_storel_epi64(q.add(i) as *mut __m128i, _mm_packs_epi16(w16, w16));
    }
    round_to_levels(&values[main..n], inv, &mut out[main..n]);
    scale
}

/// The largest finite magnitude's bits (ordered as the magnitudes are).
#[inline(always)]
fn max_magnitude_bits(values: &[f32]) -> u32 {
    const INF: u32 = 0x7F80_0000;
    values.iter().fold(0u32, |m, x| {
        let bits = x.to_bits() & 0x7FFF_FFFF;
        m.max(if bits < INF { bits } else { 0 })
    })
}

/// Each value times `inv`, clamped to ±127, to its nearest level: half away from zero
/// added, then truncated by `as` (`f32::round` is a libm call); NaN to 0.
#[inline(always)]
fn round_to_levels(values: &[f32], inv: f32, out: &mut [i8]) {
    for (o, &x) in out.iter_mut().zip(values) {
        let r = x * inv;
        let r = if r.is_nan() {
            0.0
        } else {
            r.clamp(-LEVELS, LEVELS)
        };
        *o = (r + 0.5f32.copysign(r)) as i32 as i8;
    }
}

#[inline(always)]
fn quantize_head_portable(values: &[f32], out: &mut [i8]) -> f32 {
    let scale = f32::from_bits(max_magnitude_bits(values)) / LEVELS;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    round_to_levels(values, inv, out);
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f32]) -> (f32, Vec<f32>) {
        let mut q = vec![0i8; values.len()];
        let scale = quantize_head(values, &mut q);
        // The AVX2 build (where the CPU has it) and the portable one agree to the bit.
        let mut portable = vec![0i8; values.len()];
        let portable_scale = quantize_head_portable(values, &mut portable);
        assert_eq!(
            (portable_scale.to_bits(), portable),
            (scale.to_bits(), q.clone())
        );
        (scale, q.iter().map(|&l| f32::from(l) * scale).collect())
    }

    /// Every value comes back within half a step of the row's scale, the largest
    /// exactly, across magnitudes from 1e-3 to 1e3, for heads of whole vectors and with
    /// a tail (and shorter than one vector).
    #[test]
    fn values_come_back_within_half_a_step() {
        for (magnitude, n) in [(1e-3f32, 64), (0.5, 67), (7.0, 5), (1e3, 128)] {
            let values: Vec<f32> = (0..n)
                .map(|i| magnitude * ((i as f32 * 0.731).sin() - 0.2))
                .collect();
            let (scale, back) = round_trip(&values);
            let max = values.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!((scale - max / 127.0).abs() <= f32::EPSILON * max);
            for (x, y) in values.iter().zip(&back) {
                assert!((x - y).abs() <= 0.5 * scale * (1.0 + 1e-5), "{x} vs {y}");
            }
            let at = values
                .iter()
                .position(|x| x.abs() == max)
                .expect("a largest value");
            assert!((back[at] - values[at]).abs() <= max * 1e-6);
        }
    }

    /// A zero head keeps scale 0 and zeros; infinities and NaN neither spoil the scale
    /// of the others nor wrap around.
    #[test]
    fn zeros_and_non_finite_values() {
        let (scale, back) = round_trip(&[0.0; 8]);
        assert_eq!(scale, 0.0);
        assert!(back.iter().all(|&x| x == 0.0));
        let values = [1.0, f32::INFINITY, -2.0, f32::NAN, f32::NEG_INFINITY];
        let mut q = [0i8; 5];
        let scale = quantize_head(&values, &mut q);
        assert_eq!(scale, 2.0 / 127.0);
        assert_eq!(q, [64, 127, -127, 0, -127]);
    }
}
