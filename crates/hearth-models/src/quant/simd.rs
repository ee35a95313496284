//! x86 helpers shared by the kernels. Each is `#[inline]` with the fewest features it
//! needs, so it inlines into any kernel compiled with a superset.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// ggml's per-block Q8 quantization of 32 floats at `x`: writes `round(x / d)` (half
/// away from zero, as `roundf`) to `qs` and returns `(d, sum of qs)` with
/// `d = max|x| / 127`, unrounded. Same values as the scalar quantizers, vectorised.
///
/// # Safety
/// `x` must be readable for 32 floats and `qs` writable for 32 bytes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_block(x: *const f32, qs: *mut i8) -> (f32, i32) {
    let sign = _mm256_set1_ps(-0.0);
    let v = [
        _mm256_loadu_ps(x),
        _mm256_loadu_ps(x.add(8)),
        _mm256_loadu_ps(x.add(16)),
        _mm256_loadu_ps(x.add(24)),
    ];
    let m = _mm256_max_ps(
        _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
        _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])),
    );
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    // roundf: add copysign(0.5 - 2^-25, v), then truncate.
    let half = _mm256_set1_ps(0.49999997);
    let q = v.map(|v| {
        let v = _mm256_mul_ps(v, id);
        let r = _mm256_add_ps(v, _mm256_or_ps(_mm256_and_ps(v, sign), half));
        _mm256_cvttps_epi32(r)
    });
    let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    // Packing interleaves 128-bit lanes; the permute puts the 32 bytes back in order.
    let p16 = [
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    ];
    let p8 = _mm256_packs_epi16(p16[0], p16[1]);
    let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(qs as *mut __m256i, p8);
    (d, _mm_cvtsi128_si32(s))
}

/// `quantize_block` on two 16-lane vectors: the same maximum, scale, rounding and sum
/// (every step exact or the same IEEE operation per value), so the same bytes.
///
/// # Safety
/// `x` must be readable for 32 floats and `qs` writable for 32 bytes; the CPU must have
/// AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn quantize_block_512(x: *const f32, qs: *mut i8) -> (f32, i32) {
    let v = [_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(16))];
    let abs = |v: __m512| {
        _mm512_castsi512_ps(_mm512_andnot_si512(
            _mm512_set1_epi32(i32::MIN),
            _mm512_castps_si512(v),
        ))
    };
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(abs(v[0]), abs(v[1])));
    let d = amax / 127.0;
    let id = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    // roundf: add copysign(0.5 - 2^-25, v), then truncate.
    let half = _mm512_set1_epi32(0.49999997f32.to_bits() as i32);
    let q = v.map(|v| {
        let v = _mm512_mul_ps(v, id);
        let sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(i32::MIN));
        let r = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_or_si512(sign, half)));
        _mm512_cvttps_epi32(r)
    });
    _mm_storeu_si128(qs as *mut __m128i, _mm512_cvtsepi32_epi8(q[0]));
    _mm_storeu_si128(qs.add(16) as *mut __m128i, _mm512_cvtsepi32_epi8(q[1]));
    (d, _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1])))
}

/// `x` rounded to f16 (to nearest even, as `f16::from_f32` does) and widened back, in
/// F16C instructions (`half`'s own conversions check the CPU's features per call).
///
/// # Safety
/// The CPU must have F16C.
#[inline]
#[target_feature(enable = "f16c")]
pub(crate) unsafe fn round_to_f16(x: f32) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
        _mm_set_ss(x),
    )))
}
