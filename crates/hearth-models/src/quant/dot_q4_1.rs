//! Q4_1 weights repacked 8 rows to a unit (`Q4_1X8`, the same 160 bytes as the file's 8
//! blocks) and their dot products with Q8_1 activation rows. In a unit block, each
//! 32-byte vector holds 4 consecutive weights of each of the 8 rows (low nibbles; the
//! high nibbles are the weights 16 further on), so one broadcast of 4 activation bytes
//! meets all 8 rows in one `vpdpbusd` (or `maddubs`), each output lane is one weight row
//! (no horizontal sums), and the block's scales apply to 8 rows in one vector op. The
//! integer sums are exact, so the VNNI and AVX2 paths give the same bits, and every
//! (weight row, activation row) pair runs the same operations whatever the batch.

use super::kernel::Kernel;
use super::q8_1::{BlockQ8_1, QK};
use super::units::{dispatch_unit, ROWS};
use half::f16;

/// One 32-weight block of 8 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q4_1X8 {
    /// Per row: the f16 scale `d` and minimum `m` (value = d * q + m).
    pub(crate) d: [u16; ROWS],
    pub(crate) m: [u16; ROWS],
    /// `[run v][row][b]`: ggml's byte `4v + b` of the row's block: low nibble = weight
    /// 4v + b, high nibble = weight 16 + 4v + b.
    pub(crate) qs: [[[u8; 4]; ROWS]; 4],
}

const _: () = assert!(std::mem::size_of::<Q4_1X8>() == ROWS * 20);

impl Q4_1X8 {
    pub(crate) const ZERO: Q4_1X8 = Q4_1X8 {
        d: [0; ROWS],
        m: [0; ROWS],
        qs: [[[0; 4]; ROWS]; 4],
    };

    /// Row `r`'s quantized weight `e` (< 32).
    pub(crate) fn q(&self, r: usize, e: usize) -> u8 {
        let byte = self.qs[(e % 16) / 4][r][e % 4];
        if e < 16 {
            byte & 0x0F
        } else {
            byte >> 4
        }
    }

    /// Row `r`'s scale and minimum.
    pub(crate) fn dm(&self, r: usize) -> (f32, f32) {
        (
            f16::from_bits(self.d[r]).to_f32(),
            f16::from_bits(self.m[r]).to_f32(),
        )
    }
}

/// `out[j * ld + rr] = dot(row rr of unit row w, activation row j of a)` for the 8 rows
/// and the `a.len() / w.len()` activation rows, with `kernel` (a slower one where the
/// CPU lacks it).
pub(crate) fn dot_unit(kernel: Kernel, w: &[Q4_1X8], a: &[BlockQ8_1], out: &mut [f32], ld: usize) {
    dispatch_unit!("Q4_1", kernel, dot_unit_scalar, w, a, out, ld)
}

/// ggml_vec_dot_q4_1_q8_1, generic version: the same operations in the same order as
/// candle's `BlockQ4_1::vec_dot`, so this path matches candle bit for bit.
pub(crate) fn dot_unit_scalar(w: &[Q4_1X8], a: &[BlockQ8_1], out: &mut [f32], ld: usize) {
    let kb = w.len();
    for j in 0..a.len() / kb {
        for r in 0..ROWS {
            let mut sumf = 0f32;
            for (u, ab) in w.iter().zip(&a[j * kb..(j + 1) * kb]) {
                let (d, min) = u.dm(r);
                let sumi: i32 = (0..QK / 2)
                    .map(|e| {
                        u.q(r, e) as i32 * ab.qs[e] as i32
                            + u.q(r, e + 16) as i32 * ab.qs[e + 16] as i32
                    })
                    .sum();
                sumf += sumi as f32 * d * ab.d + min * ab.s;
            }
            out[j * ld + r] = sumf;
        }
    }
}

/// One x86 kernel module per feature set. `$vnni`: a block's products summed by
/// `vpdpbusd` in i32 (two chains per activation row), else by `maddubs` pairs added in
/// i16 (8 pairs of u4 x i8 stay under 2^15) and widened by one `madd`.
macro_rules! q4_1_kernel {
    ($name:ident, $feat:literal, $vnni:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;
            use std::arch::x86_64::*;

            use super::super::units::unit_tiles;

            /// A unit block unpacked for a tile: its 8 byte vectors (low nibbles of run
            /// v at 2v, high at 2v + 1), scales and minimums.
            struct Unpacked {
                q: [__m256i; 8],
                d: __m256,
                mn: __m256,
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot_unit(
                w: &[Q4_1X8],
                a: &[BlockQ8_1],
                out: &mut [f32],
                ld: usize,
            ) {
                let low = _mm256_set1_epi8(0x0F);
                unit_tiles!(
                    w,
                    a,
                    out,
                    ld,
                    |u| {
                        let qp = u.qs.as_ptr() as *const __m256i;
                        Unpacked {
                            q: std::array::from_fn(|i| {
                                let raw = _mm256_loadu_si256(qp.add(i / 2));
                                if i % 2 == 0 {
                                    _mm256_and_si256(raw, low)
                                } else {
                                    _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low)
                                }
                            }),
                            d: _mm256_cvtph_ps(_mm_loadu_si128(u.d.as_ptr() as *const __m128i)),
                            mn: _mm256_cvtph_ps(_mm_loadu_si128(u.m.as_ptr() as *const __m128i)),
                        }
                    },
                    rows_dot
                );
            }

            /// `R` activation rows' blocks against one unit block: per row, the exact
            /// integer sums, then `acc += sum * (d * d_a)` and `acc += m * s_a`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn rows_dot<const R: usize>(
                u: &Unpacked,
                blocks: [&BlockQ8_1; R],
                acc: [&mut __m256; R],
            ) {
                let (q, d, mn) = (&u.q, u.d, u.mn);
                let ap: [*const i32; R] = blocks.map(|b| b.qs.as_ptr() as *const i32);
                // 4 activation bytes (weights 4v.. or 16 + 4v..) broadcast to all 8 rows.
                let act = |i: usize, at: usize| _mm256_set1_epi32(ap[i].add(at).read_unaligned());
                let mut sumi = [_mm256_setzero_si256(); R];
                if $vnni {
                    let mut hi = [_mm256_setzero_si256(); R];
                    for v in 0..4 {
                        for i in 0..R {
                            sumi[i] = _mm256_dpbusd_epi32(sumi[i], q[2 * v], act(i, v));
                            hi[i] = _mm256_dpbusd_epi32(hi[i], q[2 * v + 1], act(i, 4 + v));
                        }
                    }
                    for i in 0..R {
                        sumi[i] = _mm256_add_epi32(sumi[i], hi[i]);
                    }
                } else {
                    let mut p16 = [_mm256_setzero_si256(); R];
                    for v in 0..4 {
                        for i in 0..R {
                            let lo = _mm256_maddubs_epi16(q[2 * v], act(i, v));
                            let hi = _mm256_maddubs_epi16(q[2 * v + 1], act(i, 4 + v));
                            p16[i] = _mm256_add_epi16(p16[i], _mm256_add_epi16(lo, hi));
                        }
                    }
                    for i in 0..R {
                        sumi[i] = _mm256_madd_epi16(p16[i], _mm256_set1_epi16(1));
                    }
                }
                for (i, acc) in acc.into_iter().enumerate() {
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(blocks[i].d));
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[i]), scale, *acc);
                    *acc = _mm256_fmadd_ps(mn, _mm256_set1_ps(blocks[i].s), *acc);
                }
            }
        }
    };
}

q4_1_kernel!(avx2, "avx2,fma,f16c", false);
q4_1_kernel!(vnni, "avx2,fma,f16c,avx512vnni,avx512vl", true);

super::pairs::dot_pair_fn!("Q4_1", Q4_1X8, BlockQ8_1);

/// The pair kernel: `vnni`'s operations, 16 rows a vector.
#[cfg(target_arch = "x86_64")]
mod zmm {
    use super::*;
    use std::arch::x86_64::*;

    use super::super::pairs::{halves16, join};

    /// A block of the two units unpacked: 8 byte vectors (low nibbles of run v at 2v,
    /// high at 2v + 1; unit 0 in the low half), scales and minimums of the 16 rows.
    struct Unpacked {
        q: [__m512i; 8],
        d: __m512,
        mn: __m512,
    }

    super::super::pairs::zmm_entry!(Q4_1X8, BlockQ8_1, super::super::pairs::PairTiling::FOURS);

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
            let raw = join(p0.add(v), p1.add(v));
            q[2 * v] = _mm512_and_si512(raw, low);
            q[2 * v + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), low);
        }
        Unpacked {
            q,
            d: _mm512_cvtph_ps(halves16(&u0.d, &u1.d)),
            mn: _mm512_cvtph_ps(halves16(&u0.m, &u1.m)),
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
}
