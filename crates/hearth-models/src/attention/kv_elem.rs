//! The element types a K/V pool holds (f32, f16, int8) as the attention kernels read them:
//! one value widened to f32 (the portable path), or 8 or 16 at once (the SIMD paths). Both
//! widen exactly, so the two paths still give the same bits.

use half::f16;

pub trait KvElem: Copy + Send + Sync + 'static {
    const ZERO: Self;

    fn to_f32(self) -> f32;

    /// 8 values at `p`, widened to f32.
    ///
    /// # Safety
    /// `p` must be readable for 8 values, and the CPU must have AVX2 and F16C (the
    /// callers are compiled for them and inline this).
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;

    /// 16 values at `p`, widened to f32.
    ///
    /// # Safety
    /// `p` must be readable for 16 values, and the CPU must have AVX-512F (the callers
    /// are compiled for it and inline this).
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
}

impl KvElem for f32 {
    const ZERO: f32 = 0.0;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> std::arch::x86_64::__m512 {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
}

impl KvElem for f16 {
    const ZERO: f16 = f16::ZERO;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }
}

/// An int8 pool's value (`kv_int8`): widened as it is; the caller applies its head's
/// scale (to the scores for K, to the softmax weights for V).
impl KvElem for i8 {
    const ZERO: i8 = 0;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const i8) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const i8) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }
}
