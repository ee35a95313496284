//! Q4_1 x Q8_1 dot products of one weight row against a run of activation rows: a
//! portable scalar path (candle's arithmetic, in candle's order) and AVX2 / VNNI paths
//! chosen at run time. u4 x i8 never saturates, so AVX2 and VNNI agree bit for bit.

use super::kernel::Kernel;
use super::q4_1::Q4_1_BLOCK_BYTES;
use super::q8_1::{BlockQ8_1, QK};
use half::f16;

/// `out[r] = dot(w, acts[r * kb..(r + 1) * kb])` for every r, where `w` is one weight
/// row of `kb` Q4_1 blocks.
pub(crate) fn dot_rows(kernel: Kernel, w: &[u8], acts: &[BlockQ8_1], out: &mut [f32]) {
    let kb = w.len() / Q4_1_BLOCK_BYTES;
    // Real asserts: the SIMD paths read through raw pointers.
    assert_eq!(w.len(), kb * Q4_1_BLOCK_BYTES, "partial Q4_1 block");
    assert_eq!(acts.len(), out.len() * kb, "activation rows do not match");
    match kernel.effective() {
        // SAFETY: `effective` checked the CPU features; lengths checked above.
        #[cfg(target_arch = "x86_64")]
        Kernel::Vnni => unsafe { vnni::dot_rows(w, acts, kb, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::dot_rows(w, acts, kb, out) },
        _ => {
            for (r, o) in out.iter_mut().enumerate() {
                *o = dot_scalar(w, &acts[r * kb..(r + 1) * kb]);
            }
        }
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// ggml_vec_dot_q4_1_q8_1, generic version: same operations in the same order as
/// candle's `BlockQ4_1::vec_dot`.
pub(crate) fn dot_scalar(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0f32;
    for (wb, ab) in w.chunks_exact(Q4_1_BLOCK_BYTES).zip(a) {
        let (d, m, qs) = (f16_at(wb, 0), f16_at(wb, 2), &wb[4..]);
        let mut sumi = 0i32;
        let (a0, a1) = ab.qs.split_at(QK / 2);
        for ((&q, &x0), &x1) in qs.iter().zip(a0).zip(a1) {
            sumi += (q & 0x0F) as i32 * x0 as i32 + (q >> 4) as i32 * x1 as i32;
        }
        sumf += sumi as f32 * d * ab.d + m * ab.s;
    }
    sumf
}

/// One x86 kernel module per feature set; `$udot` is the u8 x i8 -> i32x8 step.
macro_rules! q4_1_kernel {
    ($name:ident, $feat:literal, $udot:path) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::super::simd::hsum;
            use super::{BlockQ8_1, Q4_1_BLOCK_BYTES};
            use std::arch::x86_64::*;

            /// Activation rows per tile: each unpacked weight block is reused this often.
            const TILE: usize = 4;

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot_rows(
                w: &[u8],
                acts: &[BlockQ8_1],
                kb: usize,
                out: &mut [f32],
            ) {
                let mut r = 0;
                while r + TILE <= out.len() {
                    tile::<TILE>(w, &acts[r * kb..], kb, &mut out[r..r + TILE]);
                    r += TILE;
                }
                while r < out.len() {
                    tile::<1>(w, &acts[r * kb..], kb, &mut out[r..r + 1]);
                    r += 1;
                }
            }

            /// `R` activation rows against one weight row. Per block: unpack the 32
            /// nibbles once (low nibbles are elements 0..16, high ones 16..32), then per
            /// row u4 x i8 -> i32x8 -> f32, fma with d_w * d_a; the min term m_w * s_a
            /// is summed apart.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile<const R: usize>(
                w: &[u8],
                acts: &[BlockQ8_1],
                kb: usize,
                out: &mut [f32],
            ) {
                let low = _mm_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); R];
                let mut mins = [0f32; R];
                let wp = w.as_ptr();
                let ap = acts.as_ptr();
                for b in 0..kb {
                    let p = wp.add(b * Q4_1_BLOCK_BYTES);
                    // d and m are adjacent f16s: one conversion gives both.
                    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
                    let dw = _mm_cvtss_f32(dm);
                    let mw = _mm_cvtss_f32(_mm_shuffle_ps::<1>(dm, dm));
                    let raw = _mm_loadu_si128(p.add(4) as *const __m128i);
                    let lo = _mm_and_si128(raw, low);
                    let hi = _mm_and_si128(_mm_srli_epi16::<4>(raw), low);
                    let q = _mm256_set_m128i(hi, lo);
                    for j in 0..R {
                        let a = &*ap.add(j * kb + b);
                        let av = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                        let s = $udot(q, av);
                        let scale = _mm256_set1_ps(dw * a.d);
                        acc[j] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[j]);
                        mins[j] += mw * a.s;
                    }
                }
                for j in 0..R {
                    out[j] = hsum(acc[j]) + mins[j];
                }
            }
        }
    };
}

q4_1_kernel!(avx2, "avx2,fma,f16c", super::super::simd::udot_avx2);
q4_1_kernel!(
    vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    super::super::simd::udot_vnni
);
