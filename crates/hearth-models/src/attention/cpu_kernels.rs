//! The two inner loops of CPU attention, each with a portable path and an AVX2+FMA path
//! that perform the same fused multiply-adds in the same order (so they give the same
//! bits): query·key scores, 2 queries x 4 keys at a time, and the softmax-weighted sum
//! of V rows, 64 columns held in registers across the keys.
//!
//! A score is `reduce(lanes)` plus a tail: lane `l` accumulates `q[d] * k[d]` for
//! `d ≡ l (mod 8)` in `d` order with fused multiply-adds; `reduce` adds the 8 lanes as a
//! pairwise tree (what a horizontal add does); products past the last multiple of 8 are
//! added after, in order. An output element is `o = w[j] * v[j] + o` (fused), key by key.

/// Lanes of a score's accumulator.
const LANES: usize = 8;

/// The most keys one `scores` call takes (a chunk).
pub(super) const MAX_KEYS: usize = 16;

/// Columns of `o` one pass of the weighted sum keeps in registers.
const COLS: usize = 64;

/// Rows of K (or V) in the pool: row `j` starts at `base + j * stride`, `len` long.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    pub(super) pool: &'a [f32],
    pub(super) base: usize,
    pub(super) stride: usize,
    pub(super) len: usize,
}

impl<'a> Rows<'a> {
    #[inline(always)]
    pub(super) fn row(&self, j: usize) -> &'a [f32] {
        let at = self.base + j * self.stride;
        &self.pool[at..at + self.len]
    }
}

/// `out[i][j] = q_i · K_j` for the queries `qs` and the `n` rows of `keys`. Inlined,
/// like the others here, so the caller's AVX2 build inlines the SIMD paths.
#[inline(always)]
pub(super) fn scores(simd: bool, qs: &[&[f32]], keys: Rows, n: usize, out: &mut [[f32; MAX_KEYS]]) {
    assert!(
        n <= MAX_KEYS && out.len() >= qs.len(),
        "score block too large"
    );
    for (pair, o) in qs.chunks(2).zip(out.chunks_mut(2)) {
        for j0 in (0..n).step_by(4) {
            // Past the last key, the last key again (results dropped).
            let k: [&[f32]; 4] = std::array::from_fn(|d| keys.row((j0 + d).min(n - 1)));
            let mut put = |i: usize, s: [f32; 4]| {
                for (d, v) in s.into_iter().enumerate().take(n - j0) {
                    o[i][j0 + d] = v;
                }
            };
            if let [q0, q1] = pair {
                let [s0, s1] = dots(simd, [q0, q1], k);
                put(0, s0);
                put(1, s1);
            } else {
                let [s0] = dots(simd, [pair[0]], k);
                put(0, s0);
            }
        }
    }
}

/// `Q` queries x four keys; every row has the queries' length.
#[inline(always)]
fn dots<const Q: usize>(simd: bool, q: [&[f32]; Q], k: [&[f32]; 4]) -> [[f32; 4]; Q] {
    let hd = q[0].len();
    assert!(q.iter().chain(&k).all(|r| r.len() == hd), "row lengths");
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the caller passes `simd` only where AVX2 and FMA were detected; the
        // lengths are checked above.
        return unsafe { avx2::dots(q, k) };
    }
    let _ = simd;
    let full = hd / LANES * LANES;
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let mut acc = [0f32; LANES];
            for c in (0..full).step_by(LANES) {
                for l in 0..LANES {
                    acc[l] = q[i][c + l].mul_add(k[j][c + l], acc[l]);
                }
            }
            let mut s = reduce(acc);
            for d in full..hd {
                s = q[i][d].mul_add(k[j][d], s);
            }
            s
        })
    })
}

/// Pairwise: (0+1)+(2+3) and (4+5)+(6+7), then the two.
#[inline(always)]
pub(super) fn reduce(a: [f32; LANES]) -> f32 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// `o += Σ_j w[j] · V_j`, key by key, for `w.len()` rows of `values`.
#[inline(always)]
pub(super) fn weighted_sum(simd: bool, o: &mut [f32], w: &[f32], values: Rows) {
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
    for (j, &wj) in w.iter().enumerate() {
        let v = &values.row(j)[c..];
        for (x, &vv) in o[c..].iter_mut().zip(v) {
            *x = wj.mul_add(vv, *x);
        }
    }
}

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

/// The sum of `w`: lane `l` adds `w[j]` for `j ≡ l (mod 8)` in order, then `reduce`.
#[inline(always)]
pub(super) fn sum(w: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = w.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    for (l, &x) in tail.iter().enumerate() {
        acc[l] += x;
    }
    reduce(acc)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Rows, COLS};
    use std::arch::x86_64::*;

    /// `super::dots` with each lane's chain in a vector lane and `reduce` as horizontal
    /// adds: `hadd` pairs (0+1, 2+3), a second `hadd` adds those pairs, and the two
    /// 128-bit halves are added last.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots<const Q: usize>(q: [&[f32]; Q], k: [&[f32]; 4]) -> [[f32; 4]; Q] {
        let hd = q[0].len();
        let full = hd / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); 4]; Q];
        let mut c = 0;
        while c < full {
            let kv: [__m256; 4] = std::array::from_fn(|j| _mm256_loadu_ps(k[j].as_ptr().add(c)));
            for i in 0..Q {
                let qv = _mm256_loadu_ps(q[i].as_ptr().add(c));
                for j in 0..4 {
                    acc[i][j] = _mm256_fmadd_ps(qv, kv[j], acc[i][j]);
                }
            }
            c += 8;
        }
        std::array::from_fn(|i| {
            let a = &acc[i];
            // [a0: 0+1, 2+3 | a1: 0+1, 2+3 | ...] per 128-bit half, then the pairs summed.
            let h01 = _mm256_hadd_ps(a[0], a[1]);
            let h23 = _mm256_hadd_ps(a[2], a[3]);
            let h = _mm256_hadd_ps(h01, h23);
            // Lanes (per half): key 0, key 1, key 2, key 3; add the halves.
            let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let mut out = [0f32; 4];
            _mm_storeu_ps(out.as_mut_ptr(), s);
            for (j, o) in out.iter_mut().enumerate() {
                for d in full..hd {
                    *o = q[i][d].mul_add(k[j][d], *o);
                }
            }
            out
        })
    }

    /// `super::weighted_sum` for columns `c..c + 64`: 8 vector accumulators across all
    /// keys.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weighted_sum64(o: &mut [f32], w: &[f32], values: Rows, c: usize) {
        assert!(o.len() == COLS, "64 columns");
        let op = o.as_mut_ptr();
        let mut acc: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(op.add(8 * i)));
        for (j, &wj) in w.iter().enumerate() {
            let v = &values.row(j)[c..c + COLS];
            let wv = _mm256_set1_ps(wj);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(v.as_ptr().add(8 * i)), *a);
            }
        }
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(8 * i), *a);
        }
    }
}
