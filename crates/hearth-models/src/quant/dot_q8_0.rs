//! Q8_0 x Q8_0 dot products of one weight row against a run of activation rows:
//! scalar (candle's order), AVX2 and VNNI. Both SIMD paths use ggml's sign trick,
//! |w| (u8) x sign(a, w) (i8), so the u8 x i8 instructions see a signed product.

use super::kernel::Kernel;
use super::q8_0::{BlockQ8_0, Q8_0_BLOCK_BYTES};
use half::f16;

/// The activations' `d` of each full group of 4 rows, laid out `[group][block][d0..d4]`,
/// so a tile of 4 rows gets its 4 scales with one vector load.
pub(crate) fn group_scales(acts: &[BlockQ8_0], m: usize, kb: usize) -> Vec<f32> {
    let mut g = vec![0f32; m / 4 * kb * 4];
    for (gi, out) in g.chunks_exact_mut(kb * 4).enumerate() {
        for (b, o) in out.chunks_exact_mut(4).enumerate() {
            for (j, v) in o.iter_mut().enumerate() {
                *v = acts[(gi * 4 + j) * kb + b].d;
            }
        }
    }
    g
}

/// `out[r] = dot(w, acts[r * kb..(r + 1) * kb])` for every r, where `w` is one weight
/// row of `kb` Q8_0 blocks and `groups` holds `group_scales` from the group of `acts`
/// row 0 on.
pub(crate) fn dot_rows(
    kernel: Kernel,
    w: &[u8],
    acts: &[BlockQ8_0],
    groups: &[f32],
    out: &mut [f32],
) {
    let kb = w.len() / Q8_0_BLOCK_BYTES;
    // Real asserts: the SIMD paths read through raw pointers.
    assert_eq!(w.len(), kb * Q8_0_BLOCK_BYTES, "partial Q8_0 block");
    assert_eq!(acts.len(), out.len() * kb, "activation rows do not match");
    assert!(
        groups.len() >= out.len() / 4 * kb * 4,
        "group scales missing"
    );
    match kernel.effective() {
        // SAFETY: `effective` checked the CPU features; lengths checked above.
        #[cfg(target_arch = "x86_64")]
        Kernel::Vnni => unsafe { vnni::dot_rows(w, acts, groups, kb, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::dot_rows(w, acts, groups, kb, out) },
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
                groups: &[f32],
                kb: usize,
                out: &mut [f32],
            ) {
                let mut r = 0;
                while r + 2 * TILE <= out.len() {
                    let g = groups.as_ptr().add(r / TILE * kb * 4);
                    tile::<2>(w, &acts[r * kb..], g, kb, &mut out[r..r + 2 * TILE]);
                    r += 2 * TILE;
                }
                while r + TILE <= out.len() {
                    let g = groups.as_ptr().add(r / TILE * kb * 4);
                    tile::<1>(w, &acts[r * kb..], g, kb, &mut out[r..r + TILE]);
                    r += TILE;
                }
                while r < out.len() {
                    tile1(w, &acts[r * kb..], kb, &mut out[r]);
                    r += 1;
                }
            }

            /// `G` groups of 4 activation rows against one weight row: per block, |w|
            /// once for all rows and each group's 4 scale products d_w * d_a in one
            /// vector op (`g`: the first group's `group_scales`); per row sign(a, w),
            /// u8 x i8 -> i32x8 -> f32, fma.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile<const G: usize>(
                w: &[u8],
                acts: &[BlockQ8_0],
                g: *const f32,
                kb: usize,
                out: &mut [f32],
            ) {
                let mut acc = [[_mm256_setzero_ps(); 4]; G];
                let mut scale = [[0f32; 4]; G];
                let (wp, ap) = (w.as_ptr(), acts.as_ptr());
                for b in 0..kb {
                    let (dw, wv) = load(wp.add(b * Q8_0_BLOCK_BYTES));
                    let aw = _mm256_sign_epi8(wv, wv);
                    for gi in 0..G {
                        let gb = g.add((gi * kb + b) * 4);
                        let sc = _mm_mul_ps(_mm_set1_ps(dw), _mm_loadu_ps(gb));
                        _mm_storeu_ps(scale[gi].as_mut_ptr(), sc);
                    }
                    for gi in 0..G {
                        for j in 0..4 {
                            let a = &*ap.add((gi * 4 + j) * kb + b);
                            let av = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                            let s = _mm256_cvtepi32_ps($udot(aw, _mm256_sign_epi8(av, wv)));
                            let sc = _mm256_broadcast_ss(&scale[gi][j]);
                            acc[gi][j] = _mm256_fmadd_ps(sc, s, acc[gi][j]);
                        }
                    }
                }
                for gi in 0..G {
                    for j in 0..4 {
                        out[gi * 4 + j] = hsum(acc[gi][j]);
                    }
                }
            }

            /// One activation row (no group): scalar scale per block.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile1(w: &[u8], acts: &[BlockQ8_0], kb: usize, out: &mut f32) {
                let mut acc = _mm256_setzero_ps();
                let (wp, ap) = (w.as_ptr(), acts.as_ptr());
                for b in 0..kb {
                    let (dw, wv) = load(wp.add(b * Q8_0_BLOCK_BYTES));
                    let a = &*ap.add(b);
                    let av = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                    let aw = _mm256_sign_epi8(wv, wv);
                    let s = _mm256_cvtepi32_ps($udot(aw, _mm256_sign_epi8(av, wv)));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * a.d), s, acc);
                }
                *out = hsum(acc);
            }

            /// A block's d and its 32 i8 weights.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn load(p: *const u8) -> (f32, __m256i) {
                let dbits = (p as *const u16).read_unaligned();
                let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(dbits as i32)));
                (dw, _mm256_loadu_si256(p.add(2) as *const __m256i))
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
