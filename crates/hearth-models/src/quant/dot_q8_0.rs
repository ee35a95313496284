//! Q8_0 x Q8_0 dot products of one weight row against a run of activation rows:
//! scalar (candle's order), AVX2 and VNNI. Both SIMD paths use ggml's sign trick,
//! |w| (u8) x sign(a, w) (i8), so the u8 x i8 instructions see a signed product.

use super::kernel::Kernel;
use super::q8_0::{BlockQ8_0, Q8_0_BLOCK_BYTES};
use half::f16;

/// `out[r] = dot(w, acts[r * kb..(r + 1) * kb])` for every r, where `w` is one weight
/// row of `kb` Q8_0 blocks.
pub(crate) fn dot_rows(kernel: Kernel, w: &[u8], acts: &[BlockQ8_0], out: &mut [f32]) {
    let kb = w.len() / Q8_0_BLOCK_BYTES;
    // Real asserts: the SIMD paths read through raw pointers.
    assert_eq!(w.len(), kb * Q8_0_BLOCK_BYTES, "partial Q8_0 block");
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

/// Same operations in the same order as candle's generic Q8_0 x Q8_0 `vec_dot`.
pub(crate) fn dot_scalar(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0f32;
    for (wb, ab) in w.chunks_exact(Q8_0_BLOCK_BYTES).zip(a) {
        let d = f16::from_bits(u16::from_le_bytes([wb[0], wb[1]])).to_f32();
        let sumi: i32 = wb[2..]
            .iter()
            .zip(&ab.qs)
            .map(|(&q, &x)| q as i8 as i32 * x as i32)
            .sum();
        sumf += sumi as f32 * d * ab.d;
    }
    sumf
}

/// One x86 kernel module per feature set; `$udot` is the u8 x i8 -> i32x8 step.
macro_rules! q8_0_kernel {
    ($name:ident, $feat:literal, $udot:path) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::super::simd::hsum;
            use super::{BlockQ8_0, Q8_0_BLOCK_BYTES};
            use std::arch::x86_64::*;

            /// Activation rows per tile: each loaded weight block is reused this often.
            const TILE: usize = 4;

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot_rows(
                w: &[u8],
                acts: &[BlockQ8_0],
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

            /// `R` activation rows against one weight row: per block, |w| once, then
            /// per row sign(a, w), u8 x i8 -> i32x8 -> f32, fma with d_w * d_a.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile<const R: usize>(
                w: &[u8],
                acts: &[BlockQ8_0],
                kb: usize,
                out: &mut [f32],
            ) {
                let mut acc = [_mm256_setzero_ps(); R];
                let wp = w.as_ptr();
                let ap = acts.as_ptr();
                for b in 0..kb {
                    let p = wp.add(b * Q8_0_BLOCK_BYTES);
                    let dbits = (p as *const u16).read_unaligned();
                    let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(dbits as i32)));
                    let wv = _mm256_loadu_si256(p.add(2) as *const __m256i);
                    let aw = _mm256_sign_epi8(wv, wv);
                    for j in 0..R {
                        let a = &*ap.add(j * kb + b);
                        let av = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                        let s = $udot(aw, _mm256_sign_epi8(av, wv));
                        let scale = _mm256_set1_ps(dw * a.d);
                        acc[j] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[j]);
                    }
                }
                for j in 0..R {
                    out[j] = hsum(acc[j]);
                }
            }
        }
    };
}

q8_0_kernel!(avx2, "avx2,fma,f16c", super::super::simd::udot_avx2);
q8_0_kernel!(
    vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    super::super::simd::udot_vnni
);
