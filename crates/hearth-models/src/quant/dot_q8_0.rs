//! Q8_0 weights repacked 8 rows to a unit (`Q8_0X8`, the same 272 bytes as the file's 8
//! blocks) and their dot products with Q8_0 activation rows, laid out as `dot_q4_1`'s
//! units: each 32-byte vector holds 4 consecutive weights of each of the 8 rows, one
//! broadcast of 4 activation bytes meets all 8 rows, each output lane is one weight row.
//! The weights are stored offset to u8 (w + 128) for the u8 x i8 `vpdpbusd`; the offset's
//! share, 128 * sum(a), comes off the exact integer sum. The AVX2 path undoes the offset
//! and uses ggml's sign trick (|w| x sign(a, w)) so that `maddubs` cannot saturate. Both
//! give the same bits, whatever the batch.

use super::kernel::Kernel;
use super::q8_0::BlockQ8_0;
use super::q8_1::QK;
use super::units::{dispatch_unit, ROWS};
use half::f16;

/// One 32-weight block of 8 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q8_0X8 {
    /// Per row: the f16 scale (value = d * q).
    pub(crate) d: [u16; ROWS],
    /// `[run v][row][b]`: weight 4v + b of the row, as `q + 128`.
    pub(crate) qs: [[[u8; 4]; ROWS]; 8],
}

const _: () = assert!(std::mem::size_of::<Q8_0X8>() == ROWS * 34);

impl Q8_0X8 {
    pub(crate) const ZERO: Q8_0X8 = Q8_0X8 {
        d: [0; ROWS],
        qs: [[[128; 4]; ROWS]; 8],
    };

    /// Row `r`'s quantized weight `e` (< 32).
    pub(crate) fn q(&self, r: usize, e: usize) -> i8 {
        (self.qs[e / 4][r][e % 4] ^ 0x80) as i8
    }

    /// Sets row `r` from a ggml block (f16 d, 32 i8).
    pub(crate) fn set_row(&mut self, r: usize, blk: &[u8]) {
        self.d[r] = u16::from_le_bytes([blk[0], blk[1]]);
        for (e, &q) in blk[2..2 + QK].iter().enumerate() {
            self.qs[e / 4][r][e % 4] = q ^ 0x80;
        }
    }

    pub(crate) fn d(&self, r: usize) -> f32 {
        f16::from_bits(self.d[r]).to_f32()
    }
}

/// `out[j * ld + rr] = dot(row rr of unit row w, activation row j of a)` for the 8 rows
/// and the `a.len() / w.len()` activation rows, with `kernel` (a slower one where the
/// CPU lacks it).
pub(crate) fn dot_unit(kernel: Kernel, w: &[Q8_0X8], a: &[BlockQ8_0], out: &mut [f32], ld: usize) {
    dispatch_unit!("Q8_0", kernel, dot_unit_scalar, w, a, out, ld)
}

/// The same operations in the same order as candle's generic Q8_0 x Q8_0 `vec_dot`.
pub(crate) fn dot_unit_scalar(w: &[Q8_0X8], a: &[BlockQ8_0], out: &mut [f32], ld: usize) {
    let kb = w.len();
    for j in 0..a.len() / kb {
        for r in 0..ROWS {
            let mut sumf = 0f32;
            for (u, ab) in w.iter().zip(&a[j * kb..(j + 1) * kb]) {
                let sumi: i32 = (0..QK).map(|e| u.q(r, e) as i32 * ab.qs[e] as i32).sum();
                sumf += sumi as f32 * u.d(r) * ab.d;
            }
            out[j * ld + r] = sumf;
        }
    }
}

/// One x86 kernel module per feature set (`$vnni`: offset weights straight into
/// `vpdpbusd`; else the sign trick into `maddubs` + `madd`).
macro_rules! q8_0_kernel {
    ($name:ident, $feat:literal, $vnni:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;
            use std::arch::x86_64::*;

            use super::super::units::unit_tiles;

            /// A unit block prepared for a tile. VNNI: run v's offset bytes as stored,
            /// at v (8..16 unused). AVX2: run v's signed weights at 2v and their
            /// magnitudes at 2v + 1, for the sign trick.
            struct Unpacked {
                q: [__m256i; 16],
                d: __m256,
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot_unit(
                w: &[Q8_0X8],
                a: &[BlockQ8_0],
                out: &mut [f32],
                ld: usize,
            ) {
                unit_tiles!(
                    w,
                    a,
                    out,
                    ld,
                    |u| {
                        let qp = u.qs.as_ptr() as *const __m256i;
                        Unpacked {
                            q: std::array::from_fn(|i| {
                                if $vnni {
                                    _mm256_loadu_si256(qp.add(i % 8))
                                } else {
                                    let raw = _mm256_loadu_si256(qp.add(i / 2));
                                    let s = _mm256_xor_si256(raw, _mm256_set1_epi8(-128));
                                    if i % 2 == 0 {
                                        s
                                    } else {
                                        _mm256_abs_epi8(s)
                                    }
                                }
                            }),
                            d: _mm256_cvtph_ps(_mm_loadu_si128(u.d.as_ptr() as *const __m128i)),
                        }
                    },
                    rows_dot
                );
            }

            /// `R` activation rows' blocks against one unit block: per row the exact
            /// integer sums, then `acc += sum * (d * d_a)`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn rows_dot<const R: usize>(
                u: &Unpacked,
                blocks: [&BlockQ8_0; R],
                acc: [&mut __m256; R],
            ) {
                let (q, d) = (&u.q, u.d);
                let ap: [*const i32; R] = blocks.map(|b| b.qs.as_ptr() as *const i32);
                // Activation bytes 4v..4v + 4 broadcast to all 8 rows.
                let act = |i: usize, v: usize| _mm256_set1_epi32(ap[i].add(v).read_unaligned());
                let mut sumi = [_mm256_setzero_si256(); R];
                if $vnni {
                    let mut odd = [_mm256_setzero_si256(); R];
                    for v in (0..8).step_by(2) {
                        for i in 0..R {
                            sumi[i] = _mm256_dpbusd_epi32(sumi[i], q[v], act(i, v));
                            odd[i] = _mm256_dpbusd_epi32(odd[i], q[v + 1], act(i, v + 1));
                        }
                    }
                    for i in 0..R {
                        let offset = _mm256_set1_epi32(128 * blocks[i].sum);
                        sumi[i] = _mm256_sub_epi32(_mm256_add_epi32(sumi[i], odd[i]), offset);
                    }
                } else {
                    let ones = _mm256_set1_epi16(1);
                    for v in 0..8 {
                        for i in 0..R {
                            // |w| x sign(a, w): pairs of at most 2 * 128 * 127 < 2^15.
                            let s = _mm256_sign_epi8(act(i, v), q[2 * v]);
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[2 * v + 1], s), ones);
                            sumi[i] = _mm256_add_epi32(sumi[i], p);
                        }
                    }
                }
                for (i, acc) in acc.into_iter().enumerate() {
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(blocks[i].d));
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[i]), scale, *acc);
                }
            }
        }
    };
}

q8_0_kernel!(avx2, "avx2,fma,f16c", false);
q8_0_kernel!(vnni, "avx2,fma,f16c,avx512vnni,avx512vl", true);

super::pairs::dot_pair_fn!("Q8_0", Q8_0X8, BlockQ8_0);

/// The pair kernel: `vnni`'s operations, 16 rows a vector.
#[cfg(target_arch = "x86_64")]
mod zmm {
    use super::*;
    use std::arch::x86_64::*;

    use super::super::pairs::{halves16, join};

    /// A block of the two units: run v's offset bytes of both (unit 0 in the low half)
    /// and the 16 rows' scales.
    struct Unpacked {
        q: [__m512i; 8],
        d: __m512,
    }

    super::super::pairs::zmm_entry!(Q8_0X8, BlockQ8_0, super::super::pairs::PairTiling::FOURS);

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn unpack(u0: &Q8_0X8, u1: &Q8_0X8) -> Unpacked {
        let (p0, p1) = (
            u0.qs.as_ptr() as *const __m256i,
            u1.qs.as_ptr() as *const __m256i,
        );
        let mut q = [_mm512_setzero_si512(); 8];
        for (v, q) in q.iter_mut().enumerate() {
            *q = join(p0.add(v), p1.add(v));
        }
        Unpacked {
            q,
            d: _mm512_cvtph_ps(halves16(&u0.d, &u1.d)),
        }
    }

    /// `R` activation rows' blocks against one block pair: the exact integer sums less
    /// the offset's share, then `acc += sum * (d * d_a)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn rows_dot<const R: usize>(
        u: &Unpacked,
        blocks: [&BlockQ8_0; R],
        acc: [&mut __m512; R],
    ) {
        let ap: [*const i32; R] = blocks.map(|b| b.qs.as_ptr() as *const i32);
        let mut even = [_mm512_setzero_si512(); R];
        let mut odd = [_mm512_setzero_si512(); R];
        for v in (0..8).step_by(2) {
            for i in 0..R {
                let a0 = _mm512_set1_epi32(ap[i].add(v).read_unaligned());
                let a1 = _mm512_set1_epi32(ap[i].add(v + 1).read_unaligned());
                even[i] = _mm512_dpbusd_epi32(even[i], u.q[v], a0);
                odd[i] = _mm512_dpbusd_epi32(odd[i], u.q[v + 1], a1);
            }
        }
        for (i, acc) in acc.into_iter().enumerate() {
            let offset = _mm512_set1_epi32(128 * blocks[i].sum);
            let sumi = _mm512_sub_epi32(_mm512_add_epi32(even[i], odd[i]), offset);
            let scale = _mm512_mul_ps(u.d, _mm512_set1_ps(blocks[i].d));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), scale, *acc);
        }
    }
}
