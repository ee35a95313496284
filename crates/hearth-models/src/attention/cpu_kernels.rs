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

/// Hints the CPU to bring rows `0..n` of `rows` into cache: the next chunk's K and V,
/// whose block sits anywhere in the pool where no hardware prefetcher looks. No effect
/// on results.
#[inline(always)]
pub(super) fn prefetch(rows: Rows, n: usize) {
    #[cfg(target_arch = "x86_64")]
    for j in 0..n {
        let row = rows.row(j);
        // One hint per 64-byte line (16 floats), and the last float for a row that
        // straddles one more line.
        for at in (0..row.len()).step_by(16).chain(row.len().checked_sub(1)) {
            // SAFETY: `at` is inside `row`; a prefetch never faults or writes.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(at) as *const i8);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (rows, n);
}

/// `out[i][j] = q_i · K_j` for the queries `qs` and the `n` rows of `keys`. Inlined,
/// like the others here, so the caller's AVX2 build inlines the SIMD paths.
#[inline(always)]
pub(super) fn scores(simd: bool, qs: &[&[f32]], keys: Rows, n: usize, out: &mut [[f32; MAX_KEYS]]) {
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
            let k: [&[f32]; 4] = std::array::from_fn(|d| keys.row((j0 + d).min(n - 1)));
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
fn dots(q: &[f32], k: [&[f32]; 4]) -> [f32; 4] {
    let hd = q.len();
    let full = hd / LANES * LANES;
    std::array::from_fn(|j| {
        let mut acc = [0f32; LANES];
        for c in (0..full).step_by(LANES) {
            for l in 0..LANES {
                acc[l] = q[c + l].mul_add(k[j][c + l], acc[l]);
            }
        }
        let mut s = reduce(acc);
        for d in full..hd {
            s = q[d].mul_add(k[j][d], s);
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
    use super::{Rows, COLS, MAX_KEYS};
    use std::arch::x86_64::*;

    /// `super::scores` with each lane's chain in a vector lane and `reduce` as horizontal
    /// adds: `hadd` pairs (0+1, 2+3), a second `hadd` adds those pairs, and the two
    /// 128-bit halves are added last; a pair of queries x four keys per pass, its four
    /// scores per query stored at once (slots past `n` get scores of the last key,
    /// which the caller never reads). One function, so nothing here is a call.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scores(qs: &[&[f32]], keys: Rows, n: usize, out: &mut [[f32; MAX_KEYS]]) {
        let hd = keys.len;
        let full = hd / 8 * 8;
        for (pair, o) in qs.chunks(2).zip(out.chunks_mut(2)) {
            for j0 in (0..n).step_by(4) {
                let k: [&[f32]; 4] = std::array::from_fn(|d| keys.row((j0 + d).min(n - 1)));
                let kp: [*const f32; 4] = std::array::from_fn(|d| k[d].as_ptr());
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
                            *s = q[d].mul_add(kj[d], *s);
                        }
                    }
                }
            }
        }
    }

    /// `Q` queries x 4 keys over the first `full` (a multiple of 8) elements: lane sums
    /// reduced, one `__m128` of 4 scores per query.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots4<const Q: usize>(
        q: [*const f32; Q],
        k: [*const f32; 4],
        full: usize,
    ) -> [__m128; Q] {
        let mut acc = [[_mm256_setzero_ps(); 4]; Q];
        let mut c = 0;
        while c < full {
            let kv: [__m256; 4] = std::array::from_fn(|j| _mm256_loadu_ps(k[j].add(c)));
            for i in 0..Q {
                let qv = _mm256_loadu_ps(q[i].add(c));
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
            _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn simd_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The SIMD paths give the portable paths' bits, for head sizes with and without a
    /// tail past a multiple of 8, odd query counts and partial key groups.
    #[test]
    fn simd_and_portable_paths_agree_bit_for_bit() {
        if !simd_available() {
            return;
        }
        for hd in [64, 72, 128, 13] {
            let stride = hd + 8;
            let pool = data(MAX_KEYS * stride + hd, hd as u32);
            let keys = Rows {
                pool: &pool,
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
