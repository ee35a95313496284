//! Q4_1 x Q8_1 dot products of one weight row against a run of activation rows: a
//! portable scalar path (candle's arithmetic, in candle's order) and AVX2 / VNNI paths
//! chosen at run time. u4 x i8 never saturates, so AVX2 and VNNI agree bit for bit.

use super::kernel::Kernel;
use super::q4_1::Q4_1_BLOCK_BYTES;
use super::q8_1::{BlockQ8_1, QK};
use half::f16;

/// The activations' `d` and `s` of each full group of 4 rows, laid out
/// `[group][block][d0..d4, s0..s4]`, so a tile of 4 rows gets its 4 scales and 4 sums
/// with one vector load each.
pub(crate) fn group_scales(acts: &[BlockQ8_1], m: usize, kb: usize) -> Vec<f32> {
    let mut g = vec![0f32; m / 4 * kb * 8];
    for (gi, out) in g.chunks_exact_mut(kb * 8).enumerate() {
        for (b, o) in out.chunks_exact_mut(8).enumerate() {
            for j in 0..4 {
                let a = &acts[(gi * 4 + j) * kb + b];
                (o[j], o[4 + j]) = (a.d, a.s);
            }
        }
    }
    g
}

/// `out[r] = dot(w, acts[r * kb..(r + 1) * kb])` for every r, where `w` is one weight
/// row of `kb` Q4_1 blocks and `groups` holds `group_scales` from the group of `acts`
/// row 0 on.
pub(crate) fn dot_rows(
    kernel: Kernel,
    w: &[u8],
    acts: &[BlockQ8_1],
    groups: &[f32],
    out: &mut [f32],
) {
    let kb = w.len() / Q4_1_BLOCK_BYTES;
    // Real asserts: the SIMD paths read through raw pointers.
    assert_eq!(w.len(), kb * Q4_1_BLOCK_BYTES, "partial Q4_1 block");
    assert_eq!(acts.len(), out.len() * kb, "activation rows do not match");
    assert!(
        groups.len() >= out.len() / 4 * kb * 8,
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
                groups: &[f32],
                kb: usize,
                out: &mut [f32],
            ) {
                let mut r = 0;
                while r + 2 * TILE <= out.len() {
                    let g = groups.as_ptr().add(r / TILE * kb * 8);
                    tile::<2>(w, &acts[r * kb..], g, kb, &mut out[r..r + 2 * TILE]);
                    r += 2 * TILE;
                }
                while r + TILE <= out.len() {
                    let g = groups.as_ptr().add(r / TILE * kb * 8);
                    tile::<1>(w, &acts[r * kb..], g, kb, &mut out[r..r + TILE]);
                    r += TILE;
                }
                while r < out.len() {
                    tile1(w, &acts[r * kb..], kb, &mut out[r]);
                    r += 1;
                }
            }

            /// `G` groups of 4 activation rows against one weight row. Per block:
            /// unpack the 32 nibbles once for all rows (low nibbles are elements 0..16,
            /// high ones 16..32); each group's 4 scale products d_w * d_a and min terms
            /// m_w * s_a take one vector op each (`g`: the first group's
            /// `group_scales`); then per row u4 x i8 -> i32x8 -> f32, fma.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile<const G: usize>(
                w: &[u8],
                acts: &[BlockQ8_1],
                g: *const f32,
                kb: usize,
                out: &mut [f32],
            ) {
                let mut acc = [[_mm256_setzero_ps(); 4]; G];
                let mut mins = [_mm_setzero_ps(); G];
                let mut scale = [[0f32; 4]; G];
                let (wp, ap) = (w.as_ptr(), acts.as_ptr());
                for b in 0..kb {
                    let p = wp.add(b * Q4_1_BLOCK_BYTES);
                    let (dw, mw, q) = unpack(p);
                    for gi in 0..G {
                        let gb = g.add((gi * kb + b) * 8);
                        let sc = _mm_mul_ps(_mm_set1_ps(dw), _mm_loadu_ps(gb));
                        _mm_storeu_ps(scale[gi].as_mut_ptr(), sc);
                        mins[gi] = _mm_fmadd_ps(_mm_set1_ps(mw), _mm_loadu_ps(gb.add(4)), mins[gi]);
                    }
                    for gi in 0..G {
                        for j in 0..4 {
                            let a = &*ap.add((gi * 4 + j) * kb + b);
                            let av = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                            let s = _mm256_cvtepi32_ps($udot(q, av));
                            let sc = _mm256_broadcast_ss(&scale[gi][j]);
                            acc[gi][j] = _mm256_fmadd_ps(sc, s, acc[gi][j]);
                        }
                    }
                }
                for gi in 0..G {
                    let mut m4 = [0f32; 4];
                    _mm_storeu_ps(m4.as_mut_ptr(), mins[gi]);
                    for j in 0..4 {
                        out[gi * 4 + j] = hsum(acc[gi][j]) + m4[j];
                    }
                }
            }

            /// One activation row (no group): scalar scale and min term per block.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile1(w: &[u8], acts: &[BlockQ8_1], kb: usize, out: &mut f32) {
                let mut acc = _mm256_setzero_ps();
                let mut mins = 0f32;
                let (wp, ap) = (w.as_ptr(), acts.as_ptr());
                for b in 0..kb {
                    let (dw, mw, q) = unpack(wp.add(b * Q4_1_BLOCK_BYTES));
                    let a = &*ap.add(b);
                    let av = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                    let s = _mm256_cvtepi32_ps($udot(q, av));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * a.d), s, acc);
                    mins += mw * a.s;
                }
                *out = hsum(acc) + mins;
            }

            /// A block's d, m and its 32 weights as u8 (elements 0..16 low nibbles).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unpack(p: *const u8) -> (f32, f32, __m256i) {
                // d and m are adjacent f16s: one conversion gives both.
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
                let dw = _mm_cvtss_f32(dm);
                let mw = _mm_cvtss_f32(_mm_shuffle_ps::<1>(dm, dm));
                let low = _mm_set1_epi8(0x0F);
                let raw = _mm_loadu_si128(p.add(4) as *const __m128i);
                let lo = _mm_and_si128(raw, low);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(raw), low);
                (dw, mw, _mm256_set_m128i(hi, lo))
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
