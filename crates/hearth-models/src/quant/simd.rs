//! x86 helpers shared by the kernels. Each is `#[inline]` with the fewest features it
//! needs, so it inlines into any kernel compiled with a superset.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// i32x8 sums of 4 adjacent u8 x i8 products. Exact only while adjacent pairs stay
/// within i16 (maddubs saturates): true for u4 x i8, and for |w| x sign(a, w) when
/// the i8 values avoid -128 on at least one side (Q8 quantizers produce -127..=127).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn udot_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// As `udot_avx2`, in one instruction and without i16 saturation.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(crate) fn udot_vnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}
