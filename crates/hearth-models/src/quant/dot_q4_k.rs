//! Q4_K weights repacked 8 rows to a unit (`Q4KX8`, 2.8% larger than the file's blocks)
//! and their dot products with Q8_K activation rows. In the unit, each 32-byte vector
//! holds 4 consecutive weights of each of the 8 rows (two such runs, as the low and high
//! nibbles), so one broadcast of 4 activation bytes meets all 8 rows in one `maddubs`,
//! a sub-block's 8 products add up in i16 before its scales apply, and each output lane
//! is one weight row: no horizontal sums. Every (weight row, activation row) pair runs
//! the same integer sums and the same float operations in the same order whatever the
//! batch, so a sequence's logits do not depend on what it is batched with.

use super::q8_k::q8k_parts;
use super::units::dispatch_unit;
use super::Kernel;
use candle_core::quantized::k_quants::BlockQ8K;

pub(crate) use super::units::ROWS;

/// One 256-weight super-block of 8 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q4KX8 {
    /// Per row: the f16 super-block scale and min scale.
    pub(crate) d: [u16; ROWS],
    pub(crate) dmin: [u16; ROWS],
    /// `[sub-block][row]`: the 6-bit scales.
    pub(crate) scales: [[u8; ROWS]; 8],
    /// `[sub-block pair p][row][2]`: the 6-bit mins of sub-blocks 2p and 2p+1.
    pub(crate) mins: [[[u8; 2]; ROWS]; 4],
    /// `[sub-block s][run v][row][4]`: low nibble = weight 32s + 4v + b, high nibble =
    /// weight 32s + 16 + 4v + b (v < 4, b < 4).
    pub(crate) qs: [[[[u8; 4]; ROWS]; 4]; 8],
}

impl Q4KX8 {
    pub(crate) const ZERO: Q4KX8 = Q4KX8 {
        d: [0; ROWS],
        dmin: [0; ROWS],
        scales: [[0; ROWS]; 8],
        mins: [[[0; 2]; ROWS]; 4],
        qs: [[[[0; 4]; ROWS]; 4]; 8],
    };

    /// Row `r`'s quantized weight `k` (0..16).
    pub(crate) fn q(&self, r: usize, k: usize) -> u8 {
        let (s, l) = (k / 32, k % 32);
        let byte = self.qs[s][(l % 16) / 4][r][l % 4];
        if l < 16 {
            byte & 0x0F
        } else {
            byte >> 4
        }
    }
}

const _: () = assert!(std::mem::size_of::<Q4KX8>() == 32 + 64 + 64 + 1024);

/// The 8 sub-block scales and mins of a Q4_K block (ggml's `get_scale_min_k4`).
pub(crate) fn scales_and_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        (sc[j], mn[j]) = if j < 4 {
            (s[j] & 63, s[j + 4] & 63)
        } else {
            (
                (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
                (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
            )
        };
    }
    (sc, mn)
}

/// `out[j * ld + rr] = dot(row rr of unit row w, activation row j of a)` for the 8 rows
/// and the `a.len() / w.len()` activation rows.
/// With `kernel` (VNNI where the CPU has it: see `Kernel::detect`); every kernel gives
/// the same bits.
pub(crate) fn dot_unit(kernel: Kernel, w: &[Q4KX8], a: &[BlockQ8K], out: &mut [f32], ld: usize) {
    dispatch_unit!("Q4_K", kernel, dot_unit_scalar, w, a, out, ld)
}

/// The portable path, with the SIMD path's integer sums and float operations in its
/// order (`mul_add` is the fused multiply-add), so the two agree bit for bit.
pub(crate) fn dot_unit_scalar(w: &[Q4KX8], a: &[BlockQ8K], out: &mut [f32], ld: usize) {
    let kb = w.len();
    for j in 0..a.len() / kb {
        let mut acc = [0f32; ROWS];
        for (u, ab) in w.iter().zip(&a[j * kb..(j + 1) * kb]) {
            let (da, qa, bsums) = q8k_parts(ab);
            for (r, acc) in acc.iter_mut().enumerate() {
                let mut sumi = 0i32;
                for s in 0..8 {
                    let dot: i32 = (0..32)
                        .map(|l| u.q(r, 32 * s + l) as i32 * qa[32 * s + l] as i32)
                        .sum();
                    sumi += dot * u.scales[s][r] as i32;
                }
                let mut mins = 0i32;
                for s in 0..8 {
                    let bs = bsums[2 * s] as i32 + bsums[2 * s + 1] as i32;
                    mins += u.mins[s / 2][r][s % 2] as i32 * bs;
                }
                let d = half::f16::from_bits(u.d[r]).to_f32() * da;
                let dmin = half::f16::from_bits(u.dmin[r]).to_f32() * da;
                *acc = (sumi as f32).mul_add(d, *acc);
                *acc = (-(mins as f32)).mul_add(dmin, *acc);
            }
        }
        for (r, v) in acc.iter().enumerate() {
            out[j * ld + r] = *v;
        }
    }
}

/// One x86 kernel module per feature set. `$vnni`: a sub-block's products summed by
/// `vpdpbusd` in i32 (two chains per row) and scaled by one i32 multiply, instead of
/// `maddubs` pairs added in i16 and scaled by `madd`; the integer sums are the same.
macro_rules! q4_k_kernel {
    ($name:ident, $feat:literal, $vnni:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;
            use std::arch::x86_64::*;

            /// Activation rows per pass over a unit row: their accumulators stay in registers.
            const TILE: usize = 8;

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot_unit(w: &[Q4KX8], a: &[BlockQ8K], out: &mut [f32], ld: usize) {
                let kb = w.len();
                let t = a.len() / kb;
                let low = _mm256_set1_epi8(0x0F);
                // The unit's weights as bytes, unpacked once per block for a tile of rows.
                let mut q = [_mm256_setzero_si256(); 64];
                for t0 in (0..t).step_by(TILE) {
                    let rows = (t - t0).min(TILE);
                    let mut acc = [_mm256_setzero_ps(); TILE];
                    for (b, u) in w.iter().enumerate() {
                        if t0 == 0 {
                            // As the 32-weight units do (`units::PREFETCH_BYTES`): this
                            // tile reads the weights from memory.
                            super::super::units::prefetch_ahead(
                                u,
                                super::super::units::blocks_ahead::<Q4KX8>(),
                            );
                        }
                        let qp = u.qs.as_ptr() as *const __m256i;
                        // One activation row: nibbles are split in registers where used
                        // (`rows_dot::<1, true>`) rather than staged for reuse.
                        if rows > 1 {
                            for (i, q) in q.chunks_exact_mut(2).enumerate() {
                                let raw = _mm256_loadu_si256(qp.add(i));
                                q[0] = _mm256_and_si256(raw, low);
                                q[1] = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low);
                            }
                        }
                        // Scale of sub-block s per row: i32 for VNNI's multiply, else as
                        // i16 pairs so one madd applies it.
                        let scale: [__m256i; 8] = std::array::from_fn(|s| {
                            let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                u.scales[s].as_ptr() as *const __m128i
                            ));
                            if $vnni {
                                v
                            } else {
                                _mm256_or_si256(v, _mm256_slli_epi32::<16>(v))
                            }
                        });
                        let mins: [__m256i; 4] = std::array::from_fn(|p| {
                            _mm256_cvtepu8_epi16(_mm_loadu_si128(
                                u.mins[p].as_ptr() as *const __m128i
                            ))
                        });
                        let d = _mm256_cvtph_ps(_mm_loadu_si128(u.d.as_ptr() as *const __m128i));
                        let dmin =
                            _mm256_cvtph_ps(_mm_loadu_si128(u.dmin.as_ptr() as *const __m128i));
                        let unit = Unit {
                            q: &q,
                            raw: qp,
                            low,
                            scale: &scale,
                            mins: &mins,
                            d,
                            dmin,
                        };
                        let mut j = 0;
                        while j + 4 <= rows {
                            let blocks: [&BlockQ8K; 4] =
                                std::array::from_fn(|i| &a[(t0 + j + i) * kb + b]);
                            let [a0, a1, a2, a3] = &mut acc[j..j + 4] else {
                                unreachable!()
                            };
                            rows_dot::<4, false>(&unit, blocks, [a0, a1, a2, a3]);
                            j += 4;
                        }
                        while j + 2 <= rows {
                            let blocks = [&a[(t0 + j) * kb + b], &a[(t0 + j + 1) * kb + b]];
                            let [a0, a1] = &mut acc[j..j + 2] else {
                                unreachable!()
                            };
                            rows_dot::<2, false>(&unit, blocks, [a0, a1]);
                            j += 2;
                        }
                        if rows == 1 {
                            rows_dot::<1, true>(&unit, [&a[t0 * kb + b]], [&mut acc[0]]);
                        } else if j < rows {
                            rows_dot::<1, false>(&unit, [&a[(t0 + j) * kb + b]], [&mut acc[j]]);
                        }
                    }
                    for (j, acc) in acc.iter().enumerate().take(rows) {
                        // In bounds: asserted by the caller.
                        _mm256_storeu_ps(out.as_mut_ptr().add((t0 + j) * ld), *acc);
                    }
                }
            }

            /// One unit's block, unpacked.
            struct Unit<'a> {
                /// The nibbles split into bytes (when staged), else read from `raw`.
                q: &'a [__m256i; 64],
                raw: *const __m256i,
                low: __m256i,
                /// Per sub-block: the row scales (i32 for VNNI, i16 pairs for `madd`).
                scale: &'a [__m256i; 8],
                mins: &'a [__m256i; 4],
                d: __m256,
                dmin: __m256,
            }

            impl Unit<'_> {
                /// Sub-block `s`, run `v`: its low and high nibbles as bytes.
                #[inline]
                #[target_feature(enable = $feat)]
                unsafe fn pair<const DIRECT: bool>(
                    &self,
                    s: usize,
                    v: usize,
                ) -> (__m256i, __m256i) {
                    if DIRECT {
                        let raw = _mm256_loadu_si256(self.raw.add(4 * s + v));
                        (
                            _mm256_and_si256(raw, self.low),
                            _mm256_and_si256(_mm256_srli_epi16::<4>(raw), self.low),
                        )
                    } else {
                        (self.q[8 * s + 2 * v], self.q[8 * s + 2 * v + 1])
                    }
                }
            }

            /// An activation row's 4 bytes that meet run `v` of sub-block `s` (low nibbles:
            /// bytes 32s + 4v.., high: 32s + 16 + 4v..), each broadcast to all 8 rows.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn acts_run(ap: *const i32, s: usize, v: usize) -> (__m256i, __m256i) {
                (
                    _mm256_set1_epi32(ap.add(8 * s + v).read_unaligned()),
                    _mm256_set1_epi32(ap.add(8 * s + 4 + v).read_unaligned()),
                )
            }

            /// `R` activation rows' blocks against one unpacked unit block, each weight vector
            /// loaded once for all `R`: per row, the same operations as any other `R`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn rows_dot<const R: usize, const DIRECT: bool>(
                u: &Unit,
                blocks: [&BlockQ8K; R],
                acc: [&mut __m256; R],
            ) {
                let parts = blocks.map(q8k_parts);
                let ap: [*const i32; R] =
                    std::array::from_fn(|i| parts[i].1.as_ptr() as *const i32);
                let mut sumi = [_mm256_setzero_si256(); R];
                for s in 0..8 {
                    if $vnni {
                        let mut p32 = [[_mm256_setzero_si256(); 2]; R];
                        for v in 0..4 {
                            let (qlo, qhi) = u.pair::<DIRECT>(s, v);
                            for i in 0..R {
                                let (lo, hi) = acts_run(ap[i], s, v);
                                p32[i][0] = _mm256_dpbusd_epi32(p32[i][0], qlo, lo);
                                p32[i][1] = _mm256_dpbusd_epi32(p32[i][1], qhi, hi);
                            }
                        }
                        for i in 0..R {
                            let p = _mm256_add_epi32(p32[i][0], p32[i][1]);
                            sumi[i] = _mm256_add_epi32(sumi[i], _mm256_mullo_epi32(p, u.scale[s]));
                        }
                    } else {
                        let mut p16 = [_mm256_setzero_si256(); R];
                        for v in 0..4 {
                            let (qlo, qhi) = u.pair::<DIRECT>(s, v);
                            for i in 0..R {
                                let (lo, hi) = acts_run(ap[i], s, v);
                                p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(qlo, lo));
                                p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(qhi, hi));
                            }
                        }
                        for i in 0..R {
                            sumi[i] =
                                _mm256_add_epi32(sumi[i], _mm256_madd_epi16(p16[i], u.scale[s]));
                        }
                    }
                }
                for (i, acc) in acc.into_iter().enumerate() {
                    let (da, _, bsums) = parts[i];
                    // Sums of each sub-block's 32 activations, as i16 pairs (2p, 2p+1).
                    let bs = _mm256_loadu_si256(bsums.as_ptr() as *const __m256i);
                    let bs = _mm_hadd_epi16(
                        _mm256_castsi256_si128(bs),
                        _mm256_extracti128_si256::<1>(bs),
                    );
                    let bs = _mm256_castsi128_si256(bs);
                    let mut msum = _mm256_setzero_si256();
                    for (p, mins) in u.mins.iter().enumerate() {
                        let pair = _mm256_permutevar8x32_epi32(bs, _mm256_set1_epi32(p as i32));
                        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(*mins, pair));
                    }
                    let da = _mm256_set1_ps(da);
                    *acc =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[i]), _mm256_mul_ps(u.d, da), *acc);
                    *acc =
                        _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(u.dmin, da), *acc);
                }
            }
        }
    };
}

q4_k_kernel!(avx2, "avx2,fma,f16c", false);
q4_k_kernel!(vnni, "avx2,fma,f16c,avx512vnni,avx512vl", true);

super::pairs::dot_pair_fn!("Q4_K", Q4KX8, BlockQ8K);

/// The pair kernel: `vnni`'s operations, 16 rows a vector.
#[cfg(target_arch = "x86_64")]
mod zmm {
    use super::*;
    use std::arch::x86_64::*;

    use super::super::pairs::{halves16, join};

    /// A block of the two units prepared for a tile (unit 0 in each vector's low half):
    /// where their nibbles are (split into bytes by each `rows_dot`, sub-block by
    /// sub-block, in registers), the 16 rows' sub-block scales as i32, their mins of
    /// sub-blocks 2p, 2p + 1 as i16 pairs, and the super-block scales.
    struct Unpacked {
        raw: [*const __m256i; 2],
        scale: [__m512i; 8],
        mins: [__m512i; 4],
        d: __m512,
        dmin: __m512,
    }

    // A tile of 8 rows in one pass, with the L2 prefetch: the 3B-shaped file's
    // 8-sequence step 91.5 -> 74.2 ms (`decode_step`, builds alternated; BENCHMARKS.md,
    // "Q4_K and Q6_K at 8 rows").
    super::super::pairs::zmm_entry!(Q4KX8, BlockQ8K, super::super::pairs::PairTiling::EIGHTS);

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn unpack(u0: &Q4KX8, u1: &Q4KX8) -> Unpacked {
        let raw = [
            u0.qs.as_ptr() as *const __m256i,
            u1.qs.as_ptr() as *const __m256i,
        ];
        let scale = std::array::from_fn(|s| {
            let lo = _mm_loadl_epi64(u0.scales[s].as_ptr() as *const __m128i);
            let hi = _mm_loadl_epi64(u1.scales[s].as_ptr() as *const __m128i);
            _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(lo, hi))
        });
        let mins = std::array::from_fn(|p| {
            let pair = _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm_loadu_si128(u0.mins[p].as_ptr() as *const __m128i)),
                _mm_loadu_si128(u1.mins[p].as_ptr() as *const __m128i),
            );
            _mm512_cvtepu8_epi16(pair)
        });
        Unpacked {
            raw,
            scale,
            mins,
            d: _mm512_cvtph_ps(halves16(&u0.d, &u1.d)),
            dmin: _mm512_cvtph_ps(halves16(&u0.dmin, &u1.dmin)),
        }
    }

    /// `R` activation rows' blocks against one unpacked block pair: per row and
    /// sub-block, the exact products (one `vpdpbusd` chain: integer sums, so the same
    /// as `vnni`'s two) times the sub-block's scale, the mins against the sub-blocks'
    /// activation sums (`vpdpwssd`, `madd` and add in one), then the two fused
    /// multiply-adds of `vnni`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn rows_dot<const R: usize>(
        u: &Unpacked,
        blocks: [&BlockQ8K; R],
        acc: [&mut __m512; R],
    ) {
        let parts = blocks.map(q8k_parts);
        let ap: [*const i32; R] = std::array::from_fn(|i| parts[i].1.as_ptr() as *const i32);
        let low = _mm512_set1_epi8(0x0F);
        let mut sumi = [_mm512_setzero_si512(); R];
        for s in 0..8 {
            let mut p32 = [_mm512_setzero_si512(); R];
            for v in 0..4 {
                let raw = join(u.raw[0].add(4 * s + v), u.raw[1].add(4 * s + v));
                let qlo = _mm512_and_si512(raw, low);
                let qhi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), low);
                for i in 0..R {
                    let lo = _mm512_set1_epi32(ap[i].add(8 * s + v).read_unaligned());
                    let hi = _mm512_set1_epi32(ap[i].add(8 * s + 4 + v).read_unaligned());
                    p32[i] = _mm512_dpbusd_epi32(p32[i], qlo, lo);
                    p32[i] = _mm512_dpbusd_epi32(p32[i], qhi, hi);
                }
            }
            for i in 0..R {
                sumi[i] = _mm512_add_epi32(sumi[i], _mm512_mullo_epi32(p32[i], u.scale[s]));
            }
        }
        for (i, acc) in acc.into_iter().enumerate() {
            let (da, _, bsums) = parts[i];
            // Sums of each sub-block's 32 activations (i16), sub-blocks 2p and 2p + 1
            // side by side in i32 lane p.
            let bs = _mm256_loadu_si256(bsums.as_ptr() as *const __m256i);
            let bs = _mm_hadd_epi16(
                _mm256_castsi256_si128(bs),
                _mm256_extracti128_si256::<1>(bs),
            );
            let pairs: [i32; 4] = std::mem::transmute(bs);
            let mut msum = _mm512_setzero_si512();
            for (p, mins) in u.mins.iter().enumerate() {
                let pair = _mm512_set1_epi32(pairs[p]);
                msum = _mm512_dpwssd_epi32(msum, *mins, pair);
            }
            let da = _mm512_set1_ps(da);
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[i]), _mm512_mul_ps(u.d, da), *acc);
            *acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(u.dmin, da), *acc);
        }
    }
}
