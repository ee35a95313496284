//! The inner loops of CPU attention, each with a portable path and an AVX2+FMA path
//! that perform the same operations in the same order (so they give the same bits):
//! query·key scores, 2 queries x 4 keys at a time; a chunk's softmax step (`weights`),
//! on its 16 slots as two masked vectors; and the softmax-weighted sum of V rows, 64
//! columns held in registers across the keys (or 32 columns of two queries at once).
//!
//! A score is `reduce(lanes)` plus a tail: lane `l` accumulates `q[d] * k[d]` for
//! `d ≡ l (mod 8)` in `d` order with fused multiply-adds; `reduce` adds the 8 lanes as a
//! pairwise tree (what a horizontal add does); products past the last multiple of 8 are
//! added after, in order. An output element is `o = w[j] * v[j] + o` (fused), key by key.

use super::kv_elem::KvElem;
use std::ops::Range;

/// Lanes of a score's accumulator.
const LANES: usize = 8;

/// The most keys one `scores` call takes (a chunk).
pub(super) const MAX_KEYS: usize = 16;

/// Columns of `o` one pass of the weighted sum keeps in registers.
const COLS: usize = 64;

/// Columns per pass when two queries share the pass (the registers hold both).
const HALF: usize = 32;

/// Rows of K (or V) in the pool: row `j` starts at `base + j * stride`, `len` long.
pub(super) struct Rows<'a, T> {
    pub(super) pool: &'a [T],
    pub(super) base: usize,
    pub(super) stride: usize,
    pub(super) len: usize,
}

impl<T> Clone for Rows<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Rows<'_, T> {}

impl<'a, T> Rows<'a, T> {
    #[inline(always)]
    pub(super) fn row(&self, j: usize) -> &'a [T] {
        let at = self.base + j * self.stride;
        &self.pool[at..at + self.len]
    }
}

/// `out[i][j] = q_i · K_j` for the queries `qs` and the `n` rows of `keys`. Inlined,
/// like the others here, so the caller's AVX2 build inlines the SIMD paths.
#[inline(always)]
pub(super) fn scores<T: KvElem>(
    simd: bool,
    qs: &[&[f32]],
    keys: Rows<T>,
    n: usize,
    out: &mut [[f32; MAX_KEYS]],
) {
    assert!(
        n <= MAX_KEYS && out.len() >= qs.len() && qs.iter().all(|q| q.len() == keys.len),
        "score block too large"
    );
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the caller passes `simd` only where AVX2 and FMA were detected; the
        // lengths are checked above.
        return unsafe { avx2::scores(qs, keys, n, out) };
    }
    let _ = simd;
    for (pair, o) in qs.chunks(2).zip(out.chunks_mut(2)) {
        for j0 in (0..n).step_by(4) {
            // Past the last key, the last key again (results dropped).
            let k: [&[T]; 4] = std::array::from_fn(|d| keys.row((j0 + d).min(n - 1)));
            for (i, q) in pair.iter().enumerate() {
                let s = dots(q, k);
                for (d, v) in s.into_iter().enumerate().take(n - j0) {
                    o[i][j0 + d] = v;
                }
            }
        }
    }
}

/// One query x four keys; every row has the query's length.
#[inline(always)]
fn dots<T: KvElem>(q: &[f32], k: [&[T]; 4]) -> [f32; 4] {
    let hd = q.len();
    let full = hd / LANES * LANES;
    std::array::from_fn(|j| {
        let mut acc = [0f32; LANES];
        for c in (0..full).step_by(LANES) {
            for l in 0..LANES {
                acc[l] = q[c + l].mul_add(k[j][c + l].to_f32(), acc[l]);
            }
        }
        let mut s = reduce(acc);
        for d in full..hd {
            s = q[d].mul_add(k[j][d].to_f32(), s);
        }
        s
    })
}

/// Pairwise: (0+1)+(2+3) and (4+5)+(6+7), then the two.
#[inline(always)]
pub(super) fn reduce(a: [f32; LANES]) -> f32 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// `o += Σ_j w[j] · V_j`, key by key, for `w.len()` rows of `values`.
#[inline(always)]
pub(super) fn weighted_sum<T: KvElem>(simd: bool, o: &mut [f32], w: &[f32], values: Rows<T>) {
    let hd = o.len();
    assert!(values.len == hd, "row length");
    let mut c = 0;
    #[cfg(target_arch = "x86_64")]
    if simd {
        while c + COLS <= hd {
            // SAFETY: AVX2+FMA detected by the caller; `o` holds COLS floats from c.
            unsafe { avx2::weighted_sum64(&mut o[c..c + COLS], w, values, c) };
            c += COLS;
        }
    }
    let _ = simd;
    // Not called when the SIMD pass took every column: its key loop would still check
    // each row's bounds (measured: ~15% of a prefix-hit prefill's attention).
    if c < hd {
        weighted_sum_from(c, o, w, values);
    }
}

/// The portable weighted sum of columns `c..` (the SIMD paths' leftover, or all).
#[inline(always)]
fn weighted_sum_from<T: KvElem>(c: usize, o: &mut [f32], w: &[f32], values: Rows<T>) {
    for (j, &wj) in w.iter().enumerate() {
        let v = &values.row(j)[c..];
        for (x, &vv) in o[c..].iter_mut().zip(v) {
            *x = wj.mul_add(vv.to_f32(), *x);
        }
    }
}

/// `weighted_sum` for two queries over the same rows (each output element gets the same
/// operations in the same order): the SIMD path loads each V vector once for both.
#[inline(always)]
pub(super) fn weighted_sum2<T: KvElem>(
    simd: bool,
    o: [&mut [f32]; 2],
    w: [&[f32]; 2],
    values: Rows<T>,
) {
    let [o0, o1] = o;
    let hd = o0.len();
    assert!(
        values.len == hd && o1.len() == hd && w[0].len() == w[1].len(),
        "row lengths"
    );
    let mut c = 0;
    #[cfg(target_arch = "x86_64")]
    if simd {
        while c + HALF <= hd {
            let o = [&mut o0[c..c + HALF], &mut o1[c..c + HALF]];
            // SAFETY: AVX2+FMA detected by the caller; each `o` holds HALF floats.
            unsafe { avx2::weighted_sum32x2(o, w, values, c) };
            c += HALF;
        }
    }
    if c < hd {
        for (o, w) in [o0, o1].into_iter().zip(w) {
            weighted_sum_from(c, o, w, values);
        }
    }
}

/// The first half of folding a chunk's keys at `slots` into one query's running softmax
/// `(max, denom, o)`: the scores `s` (slot j: the chunk's key j) are scaled and
/// soft-capped; where their largest beats `max`, the state is rescaled to it (by `exp`
/// below, not libm's, whose call showed as 1.5-2% of serving time); they become weights
/// `exp(s - max)` in place, added to `denom` lane by slot (lane `j % 8` adds slot j's
/// weight in slot order, then `reduce`). The second half is `weighted_sum` (or
/// `weighted_sum2`) of the weights at `slots`.
#[inline(always)]
pub(super) fn weights(
    simd: bool,
    s: &mut [f32; MAX_KEYS],
    slots: Range<usize>,
    (scale, softcap): (f32, Option<f32>),
    (max, denom, o): (&mut f32, &mut f32, &mut [f32]),
) {
    assert!(
        slots.start < slots.end && slots.end <= MAX_KEYS,
        "chunk slots"
    );
    let mut scale = scale;
    if let Some(cap) = softcap {
        for x in &mut s[slots.clone()] {
            *x = cap * ((*x * scale) / cap).tanh();
        }
        scale = 1.0;
    }
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the caller passes `simd` only where AVX2 and FMA were detected.
        unsafe { avx2::softmax_step(s, slots.clone(), scale, max, denom, o) };
    }
    if !simd || cfg!(not(target_arch = "x86_64")) {
        let w = &mut s[slots.clone()];
        w.iter_mut().for_each(|x| *x *= scale);
        let m = self::max(w);
        if m > *max {
            rescale(o, denom, exp(*max - m));
            *max = m;
        }
        w.iter_mut().for_each(|x| *x = exp(*x - *max));
        let mut acc = [0f32; LANES];
        for j in slots.clone() {
            acc[j % LANES] += s[j];
        }
        *denom += reduce(acc);
    }
}

/// `denom *= c`, `o *= c`: the running state moved to a larger maximum.
#[inline(always)]
fn rescale(o: &mut [f32], denom: &mut f32, c: f32) {
    *denom *= c;
    o.iter_mut().for_each(|x| *x *= c);
}

/// e^x for x <= 0 (a score minus its running maximum), Cephes' `expf` polynomial without
/// branches so a slice of them vectorises, evaluated with fused multiply-adds (half the
/// operations and half the dependent chain of separate ones): relative error ~2e-7;
/// below -87.3 it returns e^-87.3 (~1e-38) where libm would return subnormals or 0.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 0.0);
    let n = x.mul_add(LOG2E, ROUND) - ROUND;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let mut p: f32 = 1.987_569_1e-4;
    for c in EXP_POLY {
        p = p.mul_add(r, c);
    }
    let y = (p * r).mul_add(r, r) + 1.0;
    f32::from_bits(((n as i32 + 127) << 23) as u32) * y
}

/// Cephes' `expf` coefficients after the first, highest power first.
const EXP_POLY: [f32; 5] = [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

/// The largest of `w` (NEG_INFINITY if empty), lane by lane so it vectorises; a
/// maximum does not depend on the order it is taken in.
#[inline(always)]
pub(super) fn max(w: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let chunks = w.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    for (l, &x) in tail.iter().enumerate() {
        m[l] = if x > m[l] { x } else { m[l] };
    }
    m.into_iter()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{KvElem, Rows, COLS, EXP_POLY, HALF, MAX_KEYS};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// `super::scores` with each lane's chain in a vector lane and `reduce` as horizontal
    /// adds: `hadd` pairs (0+1, 2+3), a second `hadd` adds those pairs, and the two
    /// 128-bit halves are added last; a pair of queries x four keys per pass, its four
    /// scores per query stored at once (slots past `n` get scores of the last key,
    /// which the caller never reads). One function, so nothing here is a call.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores<T: KvElem>(
        qs: &[&[f32]],
        keys: Rows<T>,
        n: usize,
        out: &mut [[f32; MAX_KEYS]],
    ) {
        let hd = keys.len;
        let full = hd / 8 * 8;
        for (pair, o) in qs.chunks(2).zip(out.chunks_mut(2)) {
            for j0 in (0..n).step_by(4) {
                let last = n - 1;
                let k = [
                    keys.row(j0),
                    keys.row((j0 + 1).min(last)),
                    keys.row((j0 + 2).min(last)),
                    keys.row((j0 + 3).min(last)),
                ];
                let kp = [k[0].as_ptr(), k[1].as_ptr(), k[2].as_ptr(), k[3].as_ptr()];
                if let [q0, q1] = pair {
                    let [s0, s1] = dots4([q0.as_ptr(), q1.as_ptr()], kp, full);
                    _mm_storeu_ps(o[0][j0..j0 + 4].as_mut_ptr(), s0);
                    _mm_storeu_ps(o[1][j0..j0 + 4].as_mut_ptr(), s1);
                } else {
                    let [s0] = dots4([pair[0].as_ptr()], kp, full);
                    _mm_storeu_ps(o[0][j0..j0 + 4].as_mut_ptr(), s0);
                }
                // Products past the last multiple of 8, in order (none for usual heads).
                for (i, q) in pair.iter().enumerate() {
                    for (j, kj) in k.iter().enumerate() {
                        let s = &mut o[i][j0 + j];
                        for d in full..hd {
                            *s = q[d].mul_add(kj[d].to_f32(), *s);
                        }
                    }
                }
            }
        }
    }

    /// `Q` queries x 4 keys over the first `full` (a multiple of 8) elements: lane sums
    /// reduced, one `__m128` of 4 scores per query.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dots4<const Q: usize, T: KvElem>(
        q: [*const f32; Q],
        k: [*const T; 4],
        full: usize,
    ) -> [__m128; Q] {
        let mut acc = [[_mm256_setzero_ps(); 4]; Q];
        let mut c = 0;
        while c < full {
            let kv = [
                T::load8(k[0].add(c)),
                T::load8(k[1].add(c)),
                T::load8(k[2].add(c)),
                T::load8(k[3].add(c)),
            ];
            for i in 0..Q {
                let qv = _mm256_loadu_ps(q[i].add(c));
                for j in 0..4 {
                    acc[i][j] = _mm256_fmadd_ps(qv, kv[j], acc[i][j]);
                }
            }
            c += 8;
        }
        // A loop, not `from_fn`: a closure would not inherit this function's features.
        let mut out = [_mm_setzero_ps(); Q];
        for (a, o) in acc.iter().zip(&mut out) {
            // [a0: 0+1, 2+3 | a1: 0+1, 2+3 | ...] per 128-bit half, then the pairs summed.
            let h01 = _mm256_hadd_ps(a[0], a[1]);
            let h23 = _mm256_hadd_ps(a[2], a[3]);
            let h = _mm256_hadd_ps(h01, h23);
            // Lanes (per half): key 0, key 1, key 2, key 3; add the halves.
            *o = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        }
        out
    }

    /// `super::weights` on the chunk's 16 slots as two vectors with
    /// the slots outside `slots` masked (-inf for the maximum, 0 for the sum): the same
    /// operations per slot as the portable path, so the same bits.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn softmax_step(
        s: &mut [f32; MAX_KEYS],
        slots: Range<usize>,
        scale: f32,
        max: &mut f32,
        denom: &mut f32,
        o: &mut [f32],
    ) {
        const { assert!(MAX_KEYS == 16) };
        let sp = s.as_mut_ptr();
        // Closures would not inherit this function's features: everything spelled out.
        let (lo, hi) = (
            _mm256_set1_epi32(slots.start as i32 - 1),
            _mm256_set1_epi32(slots.end as i32),
        );
        let i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
        let in0 = _mm256_and_si256(_mm256_cmpgt_epi32(i0, lo), _mm256_cmpgt_epi32(hi, i0));
        let in1 = _mm256_and_si256(_mm256_cmpgt_epi32(i1, lo), _mm256_cmpgt_epi32(hi, i1));
        let mask = [_mm256_castsi256_ps(in0), _mm256_castsi256_ps(in1)];
        let sc = _mm256_set1_ps(scale);
        let x = [
            _mm256_mul_ps(_mm256_loadu_ps(sp), sc),
            _mm256_mul_ps(_mm256_loadu_ps(sp.add(8)), sc),
        ];
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let m = _mm256_max_ps(
            _mm256_blendv_ps(ninf, x[0], mask[0]),
            _mm256_blendv_ps(ninf, x[1], mask[1]),
        );
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        if m > *max {
            super::rescale(o, denom, super::exp(*max - m));
            *max = m;
        }
        let mv = _mm256_set1_ps(*max);
        let w = [
            _mm256_and_ps(exp8(_mm256_sub_ps(x[0], mv)), mask[0]),
            _mm256_and_ps(exp8(_mm256_sub_ps(x[1], mv)), mask[1]),
        ];
        _mm256_storeu_ps(sp, w[0]);
        _mm256_storeu_ps(sp.add(8), w[1]);
        // Lane l: 0 + slot l + slot l + 8 (masked slots add +0, which changes nothing).
        let acc = _mm256_add_ps(_mm256_add_ps(_mm256_setzero_ps(), w[0]), w[1]);
        let h = _mm256_hadd_ps(acc, acc);
        let h = _mm256_hadd_ps(h, h);
        let sum = _mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        *denom += _mm_cvtss_f32(sum);
    }

    /// `super::exp` on 8 lanes: the same operations in the same order.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3)), _mm256_setzero_ps());
        let round = _mm256_set1_ps(12_582_912.0);
        let n = _mm256_sub_ps(
            _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), round),
            round,
        );
        let neg_n = _mm256_sub_ps(_mm256_setzero_ps(), n);
        let r = _mm256_fmadd_ps(
            neg_n,
            _mm256_set1_ps(-2.121_944_4e-4),
            _mm256_fmadd_ps(neg_n, _mm256_set1_ps(0.693_359_4), x),
        );
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in EXP_POLY {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(
            _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r),
            _mm256_set1_ps(1.0),
        );
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvttps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(_mm256_castsi256_ps(e), y)
    }

    /// `super::weighted_sum2` for columns `c..c + 32` of two queries: 4 accumulators
    /// each, every V vector loaded once for both.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum32x2<T: KvElem>(
        o: [&mut [f32]; 2],
        w: [&[f32]; 2],
        values: Rows<T>,
        c: usize,
    ) {
        let n = w[0].len();
        assert!(
            o[0].len() == HALF && o[1].len() == HALF && w[1].len() == n,
            "32 columns"
        );
        if n == 0 {
            return;
        }
        let first = values.base + c;
        assert!(
            c + HALF <= values.len && first + (n - 1) * values.stride + HALF <= values.pool.len(),
            "value rows outside the pool"
        );
        let op = [o[0].as_mut_ptr(), o[1].as_mut_ptr()];
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        for q in 0..2 {
            for i in 0..4 {
                acc[q][i] = _mm256_loadu_ps(op[q].add(8 * i));
            }
        }
        let mut v = values.pool.as_ptr().add(first);
        for j in 0..n {
            let wv = [_mm256_set1_ps(w[0][j]), _mm256_set1_ps(w[1][j])];
            for i in 0..4 {
                let x = T::load8(v.add(8 * i));
                acc[0][i] = _mm256_fmadd_ps(wv[0], x, acc[0][i]);
                acc[1][i] = _mm256_fmadd_ps(wv[1], x, acc[1][i]);
            }
            v = v.add(values.stride);
        }
        for q in 0..2 {
            for i in 0..4 {
                _mm256_storeu_ps(op[q].add(8 * i), acc[q][i]);
            }
        }
    }

    /// `super::weighted_sum` for columns `c..c + 64`: 8 vector accumulators across all
    /// keys.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum64<T: KvElem>(
        o: &mut [f32],
        w: &[f32],
        values: Rows<T>,
        c: usize,
    ) {
        assert!(o.len() == COLS, "64 columns");
        let op = o.as_mut_ptr();
        let mut acc = [_mm256_setzero_ps(); 8];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(op.add(8 * i));
        }
        if w.is_empty() {
            return;
        }
        // One bounds check for all rows (the last row's columns end inside the pool),
        // then plain pointer steps: this loop is a quarter of attention's time.
        let first = values.base + c;
        assert!(
            c + COLS <= values.len
                && first + (w.len() - 1) * values.stride + COLS <= values.pool.len(),
            "value rows outside the pool"
        );
        let mut v = values.pool.as_ptr().add(first);
        for &wj in w {
            let wv = _mm256_set1_ps(wj);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(wv, T::load8(v.add(8 * i)), *a);
            }
            v = v.add(values.stride);
        }
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(8 * i), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut state = u64::from(seed) * 0x9E37_79B9_7F4A_7C15 | 1;
        crate::test_data::xorshift_floats(&mut state, len)
    }

    fn simd_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The SIMD paths give the portable paths' bits, for head sizes with and without a
    /// tail past a multiple of 8, odd query counts and partial key groups, with K/V
    /// pools of f32 and of f16.
    #[test]
    fn simd_and_portable_paths_agree_bit_for_bit() {
        if !simd_available() {
            return;
        }
        agree_bit_for_bit(|x| x.to_vec());
        agree_bit_for_bit(|x| x.iter().map(|&v| half::f16::from_f32(v)).collect());
    }

    fn agree_bit_for_bit<T: KvElem>(store: impl Fn(&[f32]) -> Vec<T>) {
        for hd in [64, 72, 128, 13] {
            let stride = hd + 8;
            let pool = data(MAX_KEYS * stride + hd, hd as u32);
            let stored = store(&pool);
            let keys = Rows {
                pool: &stored,
                base: 5,
                stride,
                len: hd,
            };
            let q = data(5 * hd, 7);
            let qs: Vec<&[f32]> = q.chunks(hd).collect();
            for n in 1..=MAX_KEYS {
                for nq in 1..=qs.len() {
                    let mut fast = vec![[0f32; MAX_KEYS]; nq];
                    let mut slow = vec![[0f32; MAX_KEYS]; nq];
                    scores(true, &qs[..nq], keys, n, &mut fast);
                    scores(false, &qs[..nq], keys, n, &mut slow);
                    for (f, s) in fast.iter().zip(&slow) {
                        let (f, s) = (&f[..n], &s[..n]);
                        assert!(
                            f.iter().zip(s).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "scores hd {hd} n {n} nq {nq}: {f:?} vs {s:?}"
                        );
                    }
                }
                for (a, b) in [(0, n), (n / 2, n), (0, n.div_ceil(2)), (n - 1, n)] {
                    for (start_max, cap) in [(f32::NEG_INFINITY, None), (0.3, Some(0.5))] {
                        let raw: [f32; MAX_KEYS] = std::array::from_fn(|j| 4.0 * pool[j]);
                        let mut runs = [true, false].map(|simd| {
                            let (mut s, mut max, mut denom) = (raw, start_max, 1.5);
                            let mut o = data(hd, 5);
                            let run = (&mut max, &mut denom, &mut o[..]);
                            weights(simd, &mut s, a..b, (0.7, cap), run);
                            let mut values = keys;
                            values.base += a * keys.stride;
                            weighted_sum(simd, &mut o, &s[a..b], values);
                            (s[a..b].to_vec(), max, denom, o)
                        });
                        let slow = runs[1].clone();
                        let fast = &mut runs[0];
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&fast.0), bits(&slow.0), "weights hd {hd} {a}..{b}");
                        assert_eq!(fast.1.to_bits(), slow.1.to_bits(), "max {a}..{b}");
                        assert_eq!(fast.2.to_bits(), slow.2.to_bits(), "denominator {a}..{b}");
                        assert_eq!(bits(&fast.3), bits(&slow.3), "output hd {hd} {a}..{b}");
                    }
                }
                let w2 = [data(n, n as u32 + 3), data(n, n as u32 + 4)];
                let [mut f0, mut f1, mut s0, mut s1] = [5, 6, 5, 6].map(|seed| data(hd, seed));
                weighted_sum2(true, [&mut f0, &mut f1], [&w2[0], &w2[1]], keys);
                weighted_sum2(false, [&mut s0, &mut s1], [&w2[0], &w2[1]], keys);
                let mut one = data(hd, 5);
                weighted_sum(false, &mut one, &w2[0], keys);
                for (fast, slow) in [(&f0, &s0), (&f1, &s1), (&f0, &one)] {
                    assert!(
                        fast.iter()
                            .zip(slow)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "paired weighted sum hd {hd} n {n}"
                    );
                }
                let w = data(n, n as u32 + 3);
                let mut fast = data(hd, 11);
                let mut slow = fast.clone();
                weighted_sum(true, &mut fast, &w, keys);
                weighted_sum(false, &mut slow, &w, keys);
                assert!(
                    fast.iter()
                        .zip(&slow)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "weighted sum hd {hd} n {n}"
                );
            }
        }
    }
}
