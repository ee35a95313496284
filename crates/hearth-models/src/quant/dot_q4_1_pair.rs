//! Q4_1 products on 512-bit vectors: two 8-row units side by side (16 weight rows a
//! vector), so one broadcast of 4 activation bytes feeds 16 rows and each block's
//! scales and sums take one vector operation for 16 rows. Where the CPU executes a
//! 512-bit `vpdpbusd` at full width (Zen 5, Intel server cores) this does twice the
//! work an instruction of the 256-bit kernel does. Per (weight row, activation row) the
//! operations are those of `dot_q4_1`'s kernels (exact integer sums, then the same two
//! fused multiply-adds), so every kernel gives the same bits.

use super::dot_q4_1::{dot_unit, Q4_1X8};
use super::kernel::Kernel;
use super::q8_1::BlockQ8_1;
use super::units::{unit_call_rows, ROWS};

/// `out[j * ld + rr]` for the 16 rows of the unit rows `w = [unit0 | unit1]` (`2 * kb`
/// blocks) or the 8 rows of a lone last unit (`kb` blocks), against the activation rows
/// of `a` (`kb` blocks each).
pub(crate) fn dot_pair(
    kernel: Kernel,
    kb: usize,
    w: &[Q4_1X8],
    a: &[BlockQ8_1],
    out: &mut [f32],
    ld: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if w.len() == 2 * kb && kernel.effective() == Kernel::Vnni512 {
        let t = unit_call_rows("Q4_1", kb, a.len(), out.len(), ld);
        assert!(
            t == 0 || out.len() >= (t - 1) * ld + 2 * ROWS,
            "Q4_1 pair output"
        );
        // SAFETY: `effective` checked the CPU features; the shapes were checked.
        return unsafe { zmm::dot_pair(kb, w, a, out, ld) };
    }
    for (i, unit) in w.chunks(kb).enumerate() {
        dot_unit(kernel, unit, a, &mut out[i * ROWS..], ld);
    }
}

#[cfg(target_arch = "x86_64")]
mod zmm {
    use super::*;
    use crate::quant::units::{prefetch_ahead, PREFETCH_AHEAD};
    use std::arch::x86_64::*;

    /// A block of the two units unpacked: 8 byte vectors (low nibbles of run v at 2v,
    /// high at 2v + 1; unit 0 in the low half), scales and minimums of the 16 rows.
    struct Unpacked {
        q: [__m512i; 8],
        d: __m512,
        mn: __m512,
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn unpack(u0: &Q4_1X8, u1: &Q4_1X8) -> Unpacked {
        let low = _mm512_set1_epi8(0x0F);
        let (p0, p1) = (
            u0.qs.as_ptr() as *const __m256i,
            u1.qs.as_ptr() as *const __m256i,
        );
        let mut q = [_mm512_setzero_si512(); 8];
        for v in 0..4 {
            let raw = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(v))),
                _mm256_loadu_si256(p1.add(v)),
            );
            q[2 * v] = _mm512_and_si512(raw, low);
            q[2 * v + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), low);
        }
        let halves = |a: &[u16; ROWS], b: &[u16; ROWS]| {
            _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm_loadu_si128(a.as_ptr() as *const __m128i)),
                _mm_loadu_si128(b.as_ptr() as *const __m128i),
            )
        };
        Unpacked {
            q,
            d: _mm512_cvtph_ps(halves(&u0.d, &u1.d)),
            mn: _mm512_cvtph_ps(halves(&u0.m, &u1.m)),
        }
    }

    /// `R` activation rows' blocks against one unpacked block pair.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn rows_dot<const R: usize>(
        u: &Unpacked,
        blocks: [&BlockQ8_1; R],
        acc: [&mut __m512; R],
    ) {
        let ap: [*const i32; R] = blocks.map(|b| b.qs.as_ptr() as *const i32);
        let mut lo = [_mm512_setzero_si512(); R];
        let mut hi = [_mm512_setzero_si512(); R];
        for v in 0..4 {
            for i in 0..R {
                let a_lo = _mm512_set1_epi32(ap[i].add(v).read_unaligned());
                let a_hi = _mm512_set1_epi32(ap[i].add(4 + v).read_unaligned());
                lo[i] = _mm512_dpbusd_epi32(lo[i], u.q[2 * v], a_lo);
                hi[i] = _mm512_dpbusd_epi32(hi[i], u.q[2 * v + 1], a_hi);
            }
        }
        for (i, acc) in acc.into_iter().enumerate() {
            let sumi = _mm512_add_epi32(lo[i], hi[i]);
            let scale = _mm512_mul_ps(u.d, _mm512_set1_ps(blocks[i].d));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), scale, *acc);
            *acc = _mm512_fmadd_ps(u.mn, _mm512_set1_ps(blocks[i].s), *acc);
        }
    }

    /// Activation rows in tiles of 8, 4, then 1 (each size a constant, so the
    /// accumulators stay in registers); the first tile of 4 or more prefetches the
    /// units' blocks ahead, as the 256-bit kernels do.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn dot_pair(
        kb: usize,
        w: &[Q4_1X8],
        a: &[BlockQ8_1],
        out: &mut [f32],
        ld: usize,
    ) {
        let t = a.len() / kb;
        let mut t0 = 0;
        while t0 < t {
            match t - t0 {
                8.. => tile::<8>(kb, w, a, out, ld, t0),
                4..=7 => tile::<4>(kb, w, a, out, ld, t0),
                _ => tile::<1>(kb, w, a, out, ld, t0),
            }
            t0 += match t - t0 {
                8.. => 8,
                4..=7 => 4,
                _ => 1,
            };
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile<const R: usize>(
        kb: usize,
        w: &[Q4_1X8],
        a: &[BlockQ8_1],
        out: &mut [f32],
        ld: usize,
        t0: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); 8];
        let (w0, w1) = w.split_at(kb);
        for b in 0..kb {
            let (u0, u1) = (&w0[b], &w1[b]);
            if R >= 4 && t0 == 0 {
                prefetch_ahead(u0, PREFETCH_AHEAD);
                prefetch_ahead(u1, PREFETCH_AHEAD);
            }
            let u = unpack(u0, u1);
            let blocks = |j: usize| &*a.as_ptr().add((t0 + j) * kb + b);
            let [a0, a1, a2, a3, a4, a5, a6, a7] = &mut acc;
            if R >= 4 {
                rows_dot::<4>(&u, std::array::from_fn(|i| blocks(i)), [a0, a1, a2, a3]);
                if R == 8 {
                    let bs = std::array::from_fn(|i| blocks(4 + i));
                    rows_dot::<4>(&u, bs, [a4, a5, a6, a7]);
                }
            } else {
                rows_dot::<1>(&u, [blocks(0)], [a0]);
            }
        }
        for (j, acc) in acc.iter().enumerate().take(R) {
            // In bounds: the caller checked `out` for every row's 16 results.
            _mm512_storeu_ps(out.as_mut_ptr().add((t0 + j) * ld), *acc);
        }
    }
}
