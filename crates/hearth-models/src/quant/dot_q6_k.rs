//! Q6_K weights repacked 8 rows to a unit (`Q6KX8`, the same 1680 bytes as the file's 8
//! blocks) and their dot products with Q8_K activation rows. As in `Q4KX8`, each 32-byte
//! vector holds 4 consecutive weights of each of the 8 rows (their low 4 bits as nibbles
//! of two runs), and a second kind of vector their high 2 bits, so one broadcast of 4
//! activation bytes meets all 8 rows in one `vpdpbusd` (or `maddubs`) and each output
//! lane is one weight row. The weights are taken unsigned (0..63) and the offset of 32
//! is paid once per sub-block through Q8_K's sums of 16. The integer sums are exact, so
//! every kernel gives the same bits, whatever the batch.

use super::q8_k::q8k_parts;
use super::units::dispatch_unit;
use super::Kernel;
use candle_core::quantized::k_quants::BlockQ8K;

pub(crate) use super::units::ROWS;

/// One 256-weight super-block of 8 rows. Group `p` holds weights `32p..32p + 32`:
/// sub-blocks `2p` (low nibbles, half 0) and `2p + 1` (high nibbles, half 1). A group's
/// low and high bits lie together, so a block is read front to back.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q6KX8 {
    /// Per row: the f16 super-block scale.
    pub(crate) d: [u16; ROWS],
    /// `[sub-block][row]`: the signed 8-bit scales.
    pub(crate) scales: [[i8; ROWS]; 16],
    pub(crate) groups: [Q6KGroup; 8],
}

/// 32 weights of each of 8 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q6KGroup {
    /// `[run v][row][b]`: low nibble = low 4 bits of weight 4v + b, high nibble = those
    /// of weight 16 + 4v + b.
    pub(crate) ql: [[[u8; 4]; ROWS]; 4],
    /// `[half h][row][b]`: bits 2v, 2v + 1 = the high 2 bits of weight 16h + 4v + b.
    pub(crate) qh: [[[u8; 4]; ROWS]; 2],
}

const _: () = assert!(std::mem::size_of::<Q6KX8>() == ROWS * 210);

impl Q6KX8 {
    pub(crate) const ZERO: Q6KX8 = Q6KX8 {
        d: [0; ROWS],
        scales: [[0; ROWS]; 16],
        groups: [Q6KGroup {
            ql: [[[0; 4]; ROWS]; 4],
            qh: [[[0; 4]; ROWS]; 2],
        }; 8],
    };

    /// Row `r`'s unsigned 6-bit weight `k` (< 256): the value is `d * scale * (q - 32)`.
    pub(crate) fn q(&self, r: usize, k: usize) -> u8 {
        let (p, h, v, b) = (k / 32, (k % 32) / 16, (k % 16) / 4, k % 4);
        let low = self.groups[p].ql[v][r][b] >> (4 * h) & 0x0F;
        let high = self.groups[p].qh[h][r][b] >> (2 * v) & 0x03;
        low | high << 4
    }

    /// Sets row `r`'s weight `k` to `q` (< 64): the tests' way to build a unit.
    #[cfg(test)]
    pub(crate) fn set_q(&mut self, r: usize, k: usize, q: u8) {
        let (p, h, v, b) = (k / 32, (k % 32) / 16, (k % 16) / 4, k % 4);
        let ql = &mut self.groups[p].ql[v][r][b];
        *ql = (*ql & !(0x0F << (4 * h))) | (q & 0x0F) << (4 * h);
        let qh = &mut self.groups[p].qh[h][r][b];
        *qh = (*qh & !(0x03 << (2 * v))) | (q >> 4 & 0x03) << (2 * v);
    }
}

/// `out[j * ld + rr] = dot(row rr of unit row w, activation row j of a)` for the 8 rows
/// and the `a.len() / w.len()` activation rows, with `kernel` (a slower one where the
/// CPU lacks it); every kernel gives the same bits.
pub(crate) fn dot_unit(kernel: Kernel, w: &[Q6KX8], a: &[BlockQ8K], out: &mut [f32], ld: usize) {
    dispatch_unit!("Q6_K", kernel, dot_unit_scalar, w, a, out, ld)
}

/// The portable path: per block, the exact integer sum `Σ_s scale_s (Σ q a - 32 Σ a)`
/// over the 16 sub-blocks, then `acc += sum * (d * d_a)` (fused), as the SIMD paths do.
pub(crate) fn dot_unit_scalar(w: &[Q6KX8], a: &[BlockQ8K], out: &mut [f32], ld: usize) {
    let kb = w.len();
    for j in 0..a.len() / kb {
        let mut acc = [0f32; ROWS];
        for (u, ab) in w.iter().zip(&a[j * kb..(j + 1) * kb]) {
            let (da, qa, bsums) = q8k_parts(ab);
            for (r, acc) in acc.iter_mut().enumerate() {
                let mut sumi = 0i32;
                for s in 0..16 {
                    let dot: i32 = (0..16)
                        .map(|l| u.q(r, 16 * s + l) as i32 * qa[16 * s + l] as i32)
                        .sum();
                    sumi += u.scales[s][r] as i32 * (dot - 32 * bsums[s] as i32);
                }
                let d = half::f16::from_bits(u.d[r]).to_f32() * da;
                *acc = (sumi as f32).mul_add(d, *acc);
            }
        }
        for (r, v) in acc.iter().enumerate() {
            out[j * ld + r] = *v;
        }
    }
}

/// One x86 kernel module per feature set. `$vnni`: a sub-block's products summed by
/// `vpdpbusd` in i32 and scaled by one i32 multiply; else `maddubs` pairs, two runs at
/// a time added in i16 (4 products of 63 x 128 stay under 2^15), scaled and widened by
/// `madd`. The integer sums are the same.
macro_rules! q6_k_kernel {
    ($name:ident, $feat:literal, $vnni:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;
            use std::arch::x86_64::*;

            /// Activation rows per pass over a unit row: their accumulators stay in registers.
            const TILE: usize = 8;

            /// One unit block unpacked: the 6-bit weights as bytes, `[p][v][half]`, and the
            /// scales per sub-block (i32 for VNNI's multiply, else as i16 pairs for
            /// `madd`), and as i16 pairs of sub-blocks `2t, 2t + 1` for the offset term.
            struct Unit {
                q: [__m256i; 64],
                scale: [__m256i; 16],
                pairs: [__m256i; 8],
                d: __m256,
            }

            /// The weights of group `p`, run `v`, half `h` (4 of each row) as bytes: the
            /// nibble, and the high 2 bits (bits 2v, 2v + 1 of the `qh` vector) shifted to
            /// bits 4, 5 (what a 16-bit shift carries over from the next byte is masked
            /// off).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn weights(u: &Q6KX8, p: usize, v: usize, h: usize) -> __m256i {
                let g = &u.groups[p];
                let raw = _mm256_loadu_si256((g.ql.as_ptr() as *const __m256i).add(v));
                let hb = _mm256_loadu_si256((g.qh.as_ptr() as *const __m256i).add(h));
                let low = if h == 0 {
                    raw
                } else {
                    _mm256_srli_epi16::<4>(raw)
                };
                let top = match v {
                    0 => _mm256_slli_epi16::<4>(hb),
                    1 => _mm256_slli_epi16::<2>(hb),
                    2 => hb,
                    _ => _mm256_srli_epi16::<2>(hb),
                };
                _mm256_or_si256(
                    _mm256_and_si256(low, _mm256_set1_epi8(0x0F)),
                    _mm256_and_si256(top, _mm256_set1_epi8(0x30)),
                )
            }

            /// Prepares `out` for a tile: the weights as bytes when `staged` (a tile of
            /// one row reads them where used instead), and the scales.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unpack(u: &Q6KX8, staged: bool, out: &mut Unit) {
                if staged {
                    for p in 0..8 {
                        for v in 0..4 {
                            for h in 0..2 {
                                out.q[8 * p + 2 * v + h] = weights(u, p, v, h);
                            }
                        }
                    }
                }
                let sc = |s: usize| {
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(u.scales[s].as_ptr() as *const __m128i))
                };
                for s in 0..16 {
                    let v = sc(s);
                    out.scale[s] = if $vnni {
                        v
                    } else {
                        _mm256_or_si256(
                            _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)),
                            _mm256_slli_epi32::<16>(v),
                        )
                    };
                }
                for t in 0..8 {
                    out.pairs[t] = _mm256_or_si256(
                        _mm256_and_si256(sc(2 * t), _mm256_set1_epi32(0xFFFF)),
                        _mm256_slli_epi32::<16>(sc(2 * t + 1)),
                    );
                }
                out.d = _mm256_cvtph_ps(_mm_loadu_si128(u.d.as_ptr() as *const __m128i));
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot_unit(w: &[Q6KX8], a: &[BlockQ8K], out: &mut [f32], ld: usize) {
                let kb = w.len();
                let t = a.len() / kb;
                let mut unit = Unit {
                    q: [_mm256_setzero_si256(); 64],
                    scale: [_mm256_setzero_si256(); 16],
                    pairs: [_mm256_setzero_si256(); 8],
                    d: _mm256_setzero_ps(),
                };
                for t0 in (0..t).step_by(TILE) {
                    let rows = (t - t0).min(TILE);
                    let mut acc = [_mm256_setzero_ps(); TILE];
                    for (b, u) in w.iter().enumerate() {
                        if t0 == 0 {
                            // As the 32-weight units do (`units::PREFETCH_BYTES`): this
                            // tile reads the weights from memory, a single row's too (on
                            // a Zen 5, a 1-sequence step of an all-Q6_K 3B file: 61.9 ->
                            // 58.7 ms; a Zen 4 had run a Qwen3-0.6B's slower with a
                            // prefetch 2 blocks ahead).
                            super::super::units::prefetch_ahead(
                                u,
                                super::super::units::blocks_ahead::<Q6KX8>(),
                            );
                        }
                        unpack(u, rows > 1, &mut unit);
                        if rows == 1 {
                            rows_dot::<1, true>(u, &unit, [&a[t0 * kb + b]], [&mut acc[0]]);
                            continue;
                        }
                        let mut j = 0;
                        while j + 4 <= rows {
                            let blocks: [&BlockQ8K; 4] =
                                std::array::from_fn(|i| &a[(t0 + j + i) * kb + b]);
                            let [a0, a1, a2, a3] = &mut acc[j..j + 4] else {
                                unreachable!()
                            };
                            rows_dot::<4, false>(u, &unit, blocks, [a0, a1, a2, a3]);
                            j += 4;
                        }
                        while j < rows {
                            let block = [&a[(t0 + j) * kb + b]];
                            rows_dot::<1, false>(u, &unit, block, [&mut acc[j]]);
                            j += 1;
                        }
                    }
                    for (j, acc) in acc.iter().enumerate().take(rows) {
                        // In bounds: asserted by the caller.
                        _mm256_storeu_ps(out.as_mut_ptr().add((t0 + j) * ld), *acc);
                    }
                }
            }

            /// `R` activation rows' blocks against one unit block `w` as `u` unpacked it
            /// (`DIRECT`: its weights read from `w` where used), each weight vector
            /// loaded once for all `R`: per row, the same operations as any `R`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn rows_dot<const R: usize, const DIRECT: bool>(
                w: &Q6KX8,
                u: &Unit,
                blocks: [&BlockQ8K; R],
                acc: [&mut __m256; R],
            ) {
                let parts = blocks.map(q8k_parts);
                let ap: [*const i32; R] =
                    std::array::from_fn(|i| parts[i].1.as_ptr() as *const i32);
                // 4 activation bytes at weight `at` (a multiple of 4), broadcast to 8 rows.
                let act =
                    |i: usize, at: usize| _mm256_set1_epi32(ap[i].add(at / 4).read_unaligned());
                let mut sumi = [_mm256_setzero_si256(); R];
                for p in 0..8 {
                    for h in 0..2 {
                        let s = 2 * p + h;
                        if $vnni {
                            let mut p32 = [[_mm256_setzero_si256(); 2]; R];
                            for v in 0..4 {
                                let q = if DIRECT {
                                    weights(w, p, v, h)
                                } else {
                                    u.q[8 * p + 2 * v + h]
                                };
                                for i in 0..R {
                                    p32[i][v % 2] = _mm256_dpbusd_epi32(
                                        p32[i][v % 2],
                                        q,
                                        act(i, 16 * s + 4 * v),
                                    );
                                }
                            }
                            for i in 0..R {
                                let dot = _mm256_add_epi32(p32[i][0], p32[i][1]);
                                sumi[i] =
                                    _mm256_add_epi32(sumi[i], _mm256_mullo_epi32(dot, u.scale[s]));
                            }
                        } else {
                            for i in 0..R {
                                let prod = |v: usize| {
                                    _mm256_maddubs_epi16(
                                        if DIRECT {
                                            weights(w, p, v, h)
                                        } else {
                                            u.q[8 * p + 2 * v + h]
                                        },
                                        act(i, 16 * s + 4 * v),
                                    )
                                };
                                let first = _mm256_add_epi16(prod(0), prod(1));
                                let second = _mm256_add_epi16(prod(2), prod(3));
                                sumi[i] =
                                    _mm256_add_epi32(sumi[i], _mm256_madd_epi16(first, u.scale[s]));
                                sumi[i] = _mm256_add_epi32(
                                    sumi[i],
                                    _mm256_madd_epi16(second, u.scale[s]),
                                );
                            }
                        }
                    }
                }
                for (i, acc) in acc.into_iter().enumerate() {
                    let (da, _, bsums) = parts[i];
                    // Σ_s scale_s * sum_s of the activations: 32 times it comes off.
                    let bp = bsums.as_ptr() as *const i32;
                    let mut offset = _mm256_setzero_si256();
                    for (t, pair) in u.pairs.iter().enumerate() {
                        let b2 = _mm256_set1_epi32(bp.add(t).read_unaligned());
                        offset = _mm256_add_epi32(offset, _mm256_madd_epi16(*pair, b2));
                    }
                    let sum = _mm256_sub_epi32(sumi[i], _mm256_slli_epi32::<5>(offset));
                    let scale = _mm256_mul_ps(u.d, _mm256_set1_ps(da));
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, *acc);
                }
            }
        }
    };
}

q6_k_kernel!(avx2, "avx2,fma,f16c", false);
q6_k_kernel!(vnni, "avx2,fma,f16c,avx512vnni,avx512vl", true);

super::pairs::dot_pair_fn!("Q6_K", Q6KX8, BlockQ8K);

/// The pair kernel: `vnni`'s operations, 16 rows a vector, the weights unpacked in
/// registers where used (as in Q4_K's pair kernel).
#[cfg(target_arch = "x86_64")]
mod zmm {
    use super::*;
    use std::arch::x86_64::*;

    use super::super::pairs::{halves16, join};

    /// A block of the two units prepared for a tile (unit 0 in each vector's low half):
    /// the blocks, the 16 rows' scales per sub-block as i32, as i16 pairs of sub-blocks
    /// `2t, 2t + 1` for the offset term, and the super-block scales.
    struct Unpacked<'a> {
        units: [&'a Q6KX8; 2],
        scale: [__m512i; 16],
        pairs: [__m512i; 8],
        d: __m512,
    }

    // As Q4_K's: 8192 x 3072, 8 rows, hot 594 -> 495 us, cold ~960 -> ~900 us (a loop of
    // `matmul_with` calls, builds alternated; either change alone was slower cold).
    super::super::pairs::zmm_entry!(Q6KX8, BlockQ8K, super::super::pairs::PairTiling::EIGHTS);

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn unpack<'a>(u0: &'a Q6KX8, u1: &'a Q6KX8) -> Unpacked<'a> {
        let sc = |s: usize| {
            let lo = _mm_loadl_epi64(u0.scales[s].as_ptr() as *const __m128i);
            let hi = _mm_loadl_epi64(u1.scales[s].as_ptr() as *const __m128i);
            _mm512_cvtepi8_epi32(_mm_unpacklo_epi64(lo, hi))
        };
        let low16 = _mm512_set1_epi32(0xFFFF);
        Unpacked {
            units: [u0, u1],
            scale: std::array::from_fn(sc),
            pairs: std::array::from_fn(|t| {
                _mm512_or_si512(
                    _mm512_and_si512(sc(2 * t), low16),
                    _mm512_slli_epi32::<16>(sc(2 * t + 1)),
                )
            }),
            d: _mm512_cvtph_ps(halves16(&u0.d, &u1.d)),
        }
    }

    /// `vnni`'s `weights` for both units: group `p`, run `v`, half `h` as bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    unsafe fn weights(u: &Unpacked, p: usize, v: usize, h: usize) -> __m512i {
        let [g0, g1] = u.units.map(|w| &w.groups[p]);
        let raw = join(
            (g0.ql.as_ptr() as *const __m256i).add(v),
            (g1.ql.as_ptr() as *const __m256i).add(v),
        );
        let hb = join(
            (g0.qh.as_ptr() as *const __m256i).add(h),
            (g1.qh.as_ptr() as *const __m256i).add(h),
        );
        let low = if h == 0 {
            raw
        } else {
            _mm512_srli_epi16::<4>(raw)
        };
        let top = match v {
            0 => _mm512_slli_epi16::<4>(hb),
            1 => _mm512_slli_epi16::<2>(hb),
            2 => hb,
            _ => _mm512_srli_epi16::<2>(hb),
        };
        _mm512_or_si512(
            _mm512_and_si512(low, _mm512_set1_epi8(0x0F)),
            _mm512_and_si512(top, _mm512_set1_epi8(0x30)),
        )
    }

    /// `R` activation rows' blocks against one block pair: per row and sub-block the
    /// exact products (one `vpdpbusd` chain: integer sums, so the same as `vnni`'s two)
    /// times the sub-block's scale, less 32 times the scaled activation sums
    /// (`vpdpwssd`), then `acc += sum * (d * d_a)`, as `vnni`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn rows_dot<const R: usize>(
        u: &Unpacked,
        blocks: [&BlockQ8K; R],
        acc: [&mut __m512; R],
    ) {
        let parts = blocks.map(q8k_parts);
        let ap: [*const i32; R] = std::array::from_fn(|i| parts[i].1.as_ptr() as *const i32);
        let mut sumi = [_mm512_setzero_si512(); R];
        for p in 0..8 {
            for h in 0..2 {
                let s = 2 * p + h;
                let mut p32 = [_mm512_setzero_si512(); R];
                for v in 0..4 {
                    let q = weights(u, p, v, h);
                    for i in 0..R {
                        let act = _mm512_set1_epi32(ap[i].add(4 * s + v).read_unaligned());
                        p32[i] = _mm512_dpbusd_epi32(p32[i], q, act);
                    }
                }
                for i in 0..R {
                    sumi[i] = _mm512_add_epi32(sumi[i], _mm512_mullo_epi32(p32[i], u.scale[s]));
                }
            }
        }
        for (i, acc) in acc.into_iter().enumerate() {
            let (da, _, bsums) = parts[i];
            let bp = bsums.as_ptr() as *const i32;
            let mut offset = _mm512_setzero_si512();
            for (t, pair) in u.pairs.iter().enumerate() {
                let b2 = _mm512_set1_epi32(bp.add(t).read_unaligned());
                offset = _mm512_dpwssd_epi32(offset, *pair, b2);
            }
            let sum = _mm512_sub_epi32(sumi[i], _mm512_slli_epi32::<5>(offset));
            let scale = _mm512_mul_ps(u.d, _mm512_set1_ps(da));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, *acc);
        }
    }
}
