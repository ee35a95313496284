//! 2^x for the CPU kernels (softmax steps, SiLU): x clamped to [-126, 126], split into
//! the nearest integer n (ties to even) and f in [-0.5, 0.5], 2^f by a degree-5
//! polynomial (fitted for relative error, ~2.5e-7) evaluated with fused multiply-adds,
//! times 2^n built in the exponent bits. Fewer operations than libm's e^x, and the
//! scalar, 8-lane and 16-lane versions perform the same operations in the same order,
//! so they give the same bits.

/// The 2^f polynomial's coefficients, highest power first.
const EXP2_POLY: [f32; 6] = [
    1.327_647_1e-3,
    9.675_542e-3,
    5.550_713e-2,
    0.240_221_2,
    0.693_146_94,
    1.000_000_1,
];

/// 2^x, within 4e-7 relative of libm over [-126, 126]; clamped outside it (a NaN gives
/// NaN here and 2^-126 on 8 lanes, whose `max` drops NaNs).
#[inline(always)]
pub(crate) fn exp2(x: f32) -> f32 {
    let x = x.clamp(-126.0, 126.0);
    let n = x.round_ties_even();
    let f = x - n;
    let mut p = EXP2_POLY[0];
    for c in &EXP2_POLY[1..] {
        p = p.mul_add(f, *c);
    }
    f32::from_bits(((n as i32 + 127) << 23) as u32) * p
}

/// `exp2` on 8 lanes: the same operations in the same order.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp2_8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-126.0)),
        _mm256_set1_ps(126.0),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
    let f = _mm256_sub_ps(x, n);
    let mut p = _mm256_set1_ps(EXP2_POLY[0]);
    for c in &EXP2_POLY[1..] {
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(*c));
    }
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(_mm256_castsi256_ps(e), p)
}

/// `exp2` on 16 lanes: the same operations in the same order.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp2_16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-126.0)),
        _mm512_set1_ps(126.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
    let f = _mm512_sub_ps(x, n);
    let mut p = _mm512_set1_ps(EXP2_POLY[0]);
    for c in &EXP2_POLY[1..] {
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(*c));
    }
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(_mm512_castsi512_ps(e), p)
}

#[cfg(test)]
mod tests {
    use super::exp2;

    /// The polynomial against libm over the whole clamped range: softmax uses it below
    /// a small slack, SiLU on both sides of 0.
    #[test]
    fn exp2_is_within_a_few_ulp_of_libm() {
        let (lo, hi) = (-126.0f32, 126.0f32);
        for i in 0..=400_000 {
            let x = lo + (hi - lo) * i as f32 / 400_000.0;
            let (got, want) = (exp2(x), x.exp2());
            assert!(
                (got - want).abs() <= 4e-7 * want,
                "exp2({x}) = {got}, libm {want}"
            );
        }
        assert!(exp2(-1000.0) <= 1.2e-38);
        assert!(exp2(f32::NEG_INFINITY) <= 1.2e-38);
        assert!(exp2(1000.0) >= 8.5e37 && exp2(1000.0).is_finite());
        assert!(exp2(f32::NAN).is_nan());
    }

    /// The 8-lane version gives the scalar bits, clamped ends and ties included.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp2_8_gives_the_scalar_bits() {
        use std::arch::x86_64::*;
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let mut xs: Vec<f32> = (0..4000).map(|i| -140.0 + i as f32 * 0.0701).collect();
        xs.extend([-0.5, 0.5, 1.5, -2.5, 0.0, -0.0, 126.0, -126.0, 1e30, -1e30]);
        xs.resize(xs.len().div_ceil(8) * 8, 0.25);
        for c in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: the features were detected above; both pointers hold 8 floats.
            unsafe {
                _mm256_storeu_ps(got.as_mut_ptr(), super::exp2_8(_mm256_loadu_ps(c.as_ptr())))
            };
            for (g, &x) in got.iter().zip(c) {
                assert_eq!(g.to_bits(), exp2(x).to_bits(), "exp2({x})");
            }
        }
    }

    #[test]
    fn exp2_16_gives_the_scalar_bits() {
        use std::arch::x86_64::*;
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut xs: Vec<f32> = (0..4000).map(|i| -140.0 + i as f32 * 0.0701).collect();
        xs.extend([-0.5, 0.5, 1.5, -2.5, 0.0, -0.0, 126.0, -126.0, 1e30, -1e30]);
        xs.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        xs.resize(xs.len().div_ceil(16) * 16, 0.25);
        for c in xs.chunks_exact(16) {
            let (mut wide, mut narrow) = ([0f32; 16], [0f32; 16]);
            // SAFETY: the features were detected above (AVX-512F implies AVX2 and FMA
            // on every CPU that has it); the pointers hold 16 floats.
            unsafe {
                _mm512_storeu_ps(
                    wide.as_mut_ptr(),
                    super::exp2_16(_mm512_loadu_ps(c.as_ptr())),
                );
                for h in 0..2 {
                    let x = _mm256_loadu_ps(c.as_ptr().add(8 * h));
                    _mm256_storeu_ps(narrow.as_mut_ptr().add(8 * h), super::exp2_8(x));
                }
            }
            for ((w, n), &x) in wide.iter().zip(&narrow).zip(c) {
                assert_eq!(w.to_bits(), n.to_bits(), "exp2({x}) on 16 and 8 lanes");
                if !x.is_nan() {
                    assert_eq!(w.to_bits(), exp2(x).to_bits(), "exp2({x})");
                }
            }
        }
    }
}
