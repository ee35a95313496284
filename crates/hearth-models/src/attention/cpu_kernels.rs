//! The inner loops of CPU attention, each with a portable path and an AVX2+FMA path
//! that perform the same operations in the same order (so they give the same bits):
//! query·key scores, 8 keys a vector (K is stored slot-minor, `KvPool`), up to 6
//! queries x 16 keys at a time; a chunk's softmax step (`weights`), on its 16 slots as
//! two vectors (one on AVX-512: 2-3% off a 200-row prefill tile's attention over 1,800
//! cached keys, up to 1% off an 8-sequence decode step); and the softmax-weighted sum
//! of V rows, 64 columns held in registers across the keys (or 32 columns of two
//! queries at once).
//!
//! A score is one chain of fused multiply-adds `s = q[d] * k[d] + s` in `d` order from
//! 0. An output element is `o = w[j] * v[j] + o` (fused), key by key.

use super::kv_elem::KvElem;
use crate::exp2::exp2;
use std::ops::Range;

/// Lanes of a vector: 8 keys' scores, or a denominator's partial sums.
pub(super) const LANES: usize = 8;

/// The most keys one `scores` call takes (a chunk).
pub(super) const MAX_KEYS: usize = 16;

/// Columns of `o` one pass of the weighted sum keeps in registers.
const COLS: usize = 64;

/// Columns per pass when two queries share the pass (the registers hold both).
const HALF: usize = 32;

/// Which inner loops run. `Avx2`: AVX2+FMA+F16C on 8-lane vectors. `Avx512`: as `Avx2`,
/// with the scores (a chunk's 16 keys a vector) and the weighted V sums (64 columns of
/// up to 6 queries in registers) on AVX-512F's 16-lane vectors. Every level performs the
/// portable path's operations in its order, so all give the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Simd {
    Portable,
    Avx2,
    Avx512,
}

impl Simd {
    /// The widest level this CPU runs.
    pub(super) fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            match (avx2, is_x86_feature_detected!("avx512f")) {
                (true, true) => Simd::Avx512,
                (true, false) => Simd::Avx2,
                _ => Simd::Portable,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Simd::Portable
    }
}

/// Queries one AVX-512 weighted-sum pass takes at most (6 x 4 accumulators: each V
/// load and conversion feeds 6 queries, 0.5-1% off a prefill tile's attention against 4).
pub(super) const GROUP: usize = 6;

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

/// Keys of a span of chunks in the K pool's slot-minor layout (`KvPool`): key vector
/// `v` (8 consecutive keys) has dimension `d`'s values at `pool[starts[v] + d *
/// stride..][..8]`; vectors `2c` and `2c + 1` are chunk `c`'s 16 slots.
#[derive(Clone, Copy)]
pub(super) struct KeyVectors<'a, T> {
    pub(super) pool: &'a [T],
    pub(super) starts: &'a [usize],
    pub(super) stride: usize,
    pub(super) dims: usize,
}

/// `out[c * nq + i][j] = q_i · K_{chunk c, slot j}` for the queries `qs` (each `dims`
/// long) and every slot of the chunks of `keys` (slots past a chunk's keys get whatever
/// the pool holds there; the caller masks them). A score is one chain of fused
/// multiply-adds in dimension order from 0, so a key's 8 lanes need no reduction and
/// the SIMD and portable paths give the same bits. Inlined, like the others here, so
/// the caller's AVX2 build inlines the SIMD paths.
#[inline(always)]
pub(super) fn scores<T: KvElem>(
    simd: Simd,
    qs: &[&[f32]],
    keys: KeyVectors<T>,
    nq: usize,
    out: &mut [[f32; MAX_KEYS]],
) {
    let nv = keys.starts.len();
    let last = keys.dims.saturating_sub(1) * keys.stride + LANES;
    assert!(
        nv.is_multiple_of(2)
            && qs.len() <= nq
            && out.len() >= nv / 2 * nq
            && qs.iter().all(|q| q.len() == keys.dims)
            && keys.starts.iter().all(|&s| s + last <= keys.pool.len()),
        "score block outside its buffers"
    );
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 && keys.dims > 0 {
        assert!(
            keys.starts.chunks_exact(2).all(|v| v[1] == v[0] + LANES),
            "a chunk's two key vectors side by side"
        );
        // SAFETY: the caller passes `Avx512` only where AVX-512F was detected; the
        // reads and output rows were checked above, and a chunk's 16 slots are its two
        // checked vectors.
        return unsafe { avx512::scores(qs, keys, nq, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Portable && keys.dims > 0 {
        // SAFETY: the caller passes `Avx2` (or wider) only where AVX2 and FMA were
        // detected; every key vector's reads and every output row were checked above.
        return unsafe { avx2::scores(qs, keys, nq, out) };
    }
    let _ = simd;
    for (i, q) in qs.iter().enumerate() {
        for (v, &at) in keys.starts.iter().enumerate() {
            for l in 0..LANES {
                let mut s = 0f32;
                for (d, &qd) in q.iter().enumerate() {
                    s = qd.mul_add(keys.pool[at + d * keys.stride + l].to_f32(), s);
                }
                out[v / 2 * nq + i][v % 2 * LANES + l] = s;
            }
        }
    }
}

/// Pairwise: (0+1)+(2+3) and (4+5)+(6+7), then the two.
#[inline(always)]
pub(super) fn reduce(a: [f32; LANES]) -> f32 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// `o += Σ_j w[j] · V_j`, key by key, for `w.len()` rows of `values`.
#[inline(always)]
pub(super) fn weighted_sum<T: KvElem>(simd: Simd, o: &mut [f32], w: &[f32], values: Rows<T>) {
    let hd = o.len();
    assert!(values.len == hd, "row length");
    let mut c = 0;
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Portable {
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

/// `weighted_sum` for `w.len()` queries over the same rows, query `i`'s output at
/// `o[i * hd..][..hd]`: on `Avx512`, up to `GROUP` queries share each V load over 64
/// columns at a time; else two at a time (`weighted_sum2`). Each output element gets the
/// same operations in the same order as `weighted_sum` alone.
#[inline(always)]
pub(super) fn weighted_sums<T: KvElem>(simd: Simd, o: &mut [f32], w: &[&[f32]], values: Rows<T>) {
    let hd = values.len;
    assert!(
        o.len() == w.len() * hd && w.iter().all(|x| x.len() == w[0].len()),
        "grouped rows"
    );
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 && w.len() <= GROUP {
        let n = w.first().map_or(0, |w| w.len());
        let first = values.base;
        if n > 0 {
            assert!(
                first + (n - 1) * values.stride + hd <= values.pool.len(),
                "value rows outside the pool"
            );
        }
        let mut c = 0;
        while c + COLS <= hd && n > 0 {
            // SAFETY: AVX-512F detected by the caller (`Avx512`); every row's columns
            // c..c + 64 lie in the pool (checked above), and each query's output holds
            // hd floats.
            unsafe {
                match w.len() {
                    1 => avx512::weighted_sum64xn::<1, T>(o, hd, w, values, c),
                    2 => avx512::weighted_sum64xn::<2, T>(o, hd, w, values, c),
                    3 => avx512::weighted_sum64xn::<3, T>(o, hd, w, values, c),
                    4 => avx512::weighted_sum64xn::<4, T>(o, hd, w, values, c),
                    5 => avx512::weighted_sum64xn::<5, T>(o, hd, w, values, c),
                    _ => avx512::weighted_sum64xn::<6, T>(o, hd, w, values, c),
                }
            }
            c += COLS;
        }
        if c < hd {
            for (o, w) in o.chunks_exact_mut(hd).zip(w) {
                weighted_sum_from(c, o, w, values);
            }
        }
        return;
    }
    let mut i = 0;
    while i < w.len() {
        let (head, rest) = o[i * hd..].split_at_mut(hd);
        if i + 1 < w.len() {
            weighted_sum2(simd, [head, &mut rest[..hd]], [w[i], w[i + 1]], values);
            i += 2;
        } else {
            weighted_sum(simd, head, w[i], values);
            i += 1;
        }
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
    simd: Simd,
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
    if simd != Simd::Portable {
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

/// How far (in powers of two) a chunk's largest score may pass the running softmax's
/// reference before the state is moved to it: weights then reach at most 2^8, far from
/// f32's range, and most chunks of a long context skip the horizontal maximum and the
/// rescale (the result is the same softmax; only where its terms are rounded moves).
pub(super) const SLACK: f32 = 8.0;

/// A query's running softmax: the reference `max` (log2 units) its weights are taken
/// against, the denominator as 8 lane sums (lane `l` adds slot `l` then `l + 8` of each
/// chunk; `reduce` at the end), and its output row `o` (unnormalised).
pub(super) struct Running<'a> {
    pub(super) max: &'a mut f32,
    pub(super) denom: &'a mut [f32; LANES],
    pub(super) o: &'a mut [f32],
}

/// The first half of folding a chunk's keys at `slots` into one query's running
/// softmax: the scores `s` (slot j: the chunk's key j) are scaled to log2 units and
/// soft-capped; where their largest passes the reference by more than `SLACK` (or there
/// is none yet), the state is rescaled to it; they become weights `2^(s - max)` in
/// place, added to the denominator's lanes. The second half is `weighted_sum` (or
/// `weighted_sum2`) of the weights at `slots`.
#[inline(always)]
pub(super) fn weights(
    simd: Simd,
    s: &mut [f32; MAX_KEYS],
    slots: Range<usize>,
    (scale, softcap): (f32, Option<f32>),
    run: Running,
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
    let scale = scale * std::f32::consts::LOG2_E;
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 {
        // SAFETY: the caller passes `Avx512` only where AVX-512F, AVX2 and FMA were
        // detected.
        unsafe { avx512::softmax_step(s, slots.clone(), scale, run) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Portable {
        // SAFETY: the caller passes `Avx2` (or wider) only where AVX2 and FMA were
        // detected.
        unsafe { avx2::softmax_step(s, slots.clone(), scale, run) };
        return;
    }
    let _ = simd;
    let w = &mut s[slots.clone()];
    w.iter_mut().for_each(|x| *x *= scale);
    let m = self::max(w);
    if m > *run.max + SLACK {
        rescale(run.o, run.denom, exp2(*run.max - m));
        *run.max = m;
    }
    w.iter_mut().for_each(|x| *x = exp2(*x - *run.max));
    for j in slots {
        run.denom[j % LANES] += s[j];
    }
}

/// `denom *= c`, `o *= c`: the running state moved to a larger reference.
#[inline(always)]
fn rescale(o: &mut [f32], denom: &mut [f32; LANES], c: f32) {
    denom.iter_mut().for_each(|x| *x *= c);
    o.iter_mut().for_each(|x| *x *= c);
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{KeyVectors, KvElem, Rows, Running, COLS, HALF, LANES, MAX_KEYS, SLACK};
    use crate::exp2::exp2_8;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// `super::scores`: queries in blocks of up to 6 against 2 key vectors (one chunk)
    /// at a time, or, for the few queries of a decode tile, 1-3 queries against 4 or 8
    /// vectors, so that at least 8 accumulators (independent chains) are in flight.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores<T: KvElem>(
        qs: &[&[f32]],
        keys: KeyVectors<T>,
        nq: usize,
        out: &mut [[f32; MAX_KEYS]],
    ) {
        let nv = keys.starts.len();
        let o = out.as_mut_ptr() as *mut f32;
        let mut i0 = 0;
        while i0 < qs.len() {
            let qb = (qs.len() - i0).min(6);
            let g = match qb {
                1 if nv.is_multiple_of(8) => 8,
                1..=3 if nv.is_multiple_of(4) => 4,
                _ => 2,
            };
            let q = &qs[i0..i0 + qb];
            let mut v0 = 0;
            while v0 < nv {
                let at = Block { i0, v0, nq, out: o };
                match (qb, g) {
                    (1, 8) => block::<1, 8, T>(q, keys, at),
                    (1, 4) => block::<1, 4, T>(q, keys, at),
                    (2, 4) => block::<2, 4, T>(q, keys, at),
                    (3, 4) => block::<3, 4, T>(q, keys, at),
                    (1, _) => block::<1, 2, T>(q, keys, at),
                    (2, _) => block::<2, 2, T>(q, keys, at),
                    (3, _) => block::<3, 2, T>(q, keys, at),
                    (4, _) => block::<4, 2, T>(q, keys, at),
                    (5, _) => block::<5, 2, T>(q, keys, at),
                    _ => block::<6, 2, T>(q, keys, at),
                }
                v0 += g;
            }
            i0 += qb;
        }
    }

    /// Where a block of scores goes: queries from `i0`, key vectors from `v0`, into the
    /// `[chunk * nq + query][slot]` rows at `out`.
    #[derive(Clone, Copy)]
    struct Block {
        i0: usize,
        v0: usize,
        nq: usize,
        out: *mut f32,
    }

    /// `Q` queries x `V` key vectors: `Q * V` accumulators, one fused multiply-add each
    /// per dimension, the query's value broadcast from memory.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const Q: usize, const V: usize, T: KvElem>(
        q: &[&[f32]],
        keys: KeyVectors<T>,
        at: Block,
    ) {
        // Loops, not `from_fn`: a closure would not inherit this function's features.
        let mut qp = [std::ptr::null::<f32>(); Q];
        for (p, q) in qp.iter_mut().zip(q) {
            *p = q.as_ptr();
        }
        let mut kp = [keys.pool.as_ptr(); V];
        for (v, p) in kp.iter_mut().enumerate() {
            *p = p.add(keys.starts[at.v0 + v]);
        }
        let mut acc = [[_mm256_setzero_ps(); V]; Q];
        for d in 0..keys.dims {
            let off = d * keys.stride;
            let mut kv = [_mm256_setzero_ps(); V];
            for (x, p) in kv.iter_mut().zip(&kp) {
                *x = T::load8(p.add(off));
            }
            for i in 0..Q {
                let qd = _mm256_broadcast_ss(&*qp[i].add(d));
                for v in 0..V {
                    acc[i][v] = _mm256_fmadd_ps(qd, kv[v], acc[i][v]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                let (c, half) = ((at.v0 + v) / 2, (at.v0 + v) % 2);
                let dst = at.out.add(((c * at.nq) + at.i0 + i) * MAX_KEYS + half * 8);
                _mm256_storeu_ps(dst, *a);
            }
        }
    }

    /// `super::weights` on the chunk's 16 slots as two vectors: the same operations per
    /// slot as the portable path, so the same bits. A whole chunk (every slot live, as
    /// all but a context's edges are) needs no masks; the horizontal maximum is taken
    /// only when some lane passes the reference by more than `SLACK`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn softmax_step(
        s: &mut [f32; MAX_KEYS],
        slots: Range<usize>,
        scale: f32,
        mut run: Running,
    ) {
        const { assert!(MAX_KEYS == 16 && LANES == 8) };
        let sp = s.as_mut_ptr();
        let sc = _mm256_set1_ps(scale);
        let mut x = [
            _mm256_mul_ps(_mm256_loadu_ps(sp), sc),
            _mm256_mul_ps(_mm256_loadu_ps(sp.add(8)), sc),
        ];
        // Closures would not inherit this function's features: everything spelled out.
        let whole = slots.start == 0 && slots.end == MAX_KEYS;
        let mut mask = [_mm256_castsi256_ps(_mm256_set1_epi32(-1)); 2];
        if !whole {
            let (lo, hi) = (
                _mm256_set1_epi32(slots.start as i32 - 1),
                _mm256_set1_epi32(slots.end as i32),
            );
            let i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
            let in0 = _mm256_and_si256(_mm256_cmpgt_epi32(i0, lo), _mm256_cmpgt_epi32(hi, i0));
            let in1 = _mm256_and_si256(_mm256_cmpgt_epi32(i1, lo), _mm256_cmpgt_epi32(hi, i1));
            mask = [_mm256_castsi256_ps(in0), _mm256_castsi256_ps(in1)];
            let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
            x = [
                _mm256_blendv_ps(ninf, x[0], mask[0]),
                _mm256_blendv_ps(ninf, x[1], mask[1]),
            ];
        }
        raise_max(_mm256_max_ps(x[0], x[1]), &mut run);
        let mv = _mm256_set1_ps(*run.max);
        let mut w = [
            exp2_8(_mm256_sub_ps(x[0], mv)),
            exp2_8(_mm256_sub_ps(x[1], mv)),
        ];
        if !whole {
            w = [_mm256_and_ps(w[0], mask[0]), _mm256_and_ps(w[1], mask[1])];
        }
        _mm256_storeu_ps(sp, w[0]);
        _mm256_storeu_ps(sp.add(8), w[1]);
        add_to_denominator(run.denom, w[0], w[1]);
    }

    /// Where some lane of the chunk's maxima `m` passes the reference by more than
    /// `SLACK`, the running state moved to their largest.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn raise_max(m: __m256, run: &mut Running) {
        let bar = _mm256_set1_ps(*run.max + SLACK);
        if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(m, bar)) != 0 {
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            super::rescale(run.o, run.denom, super::exp2(*run.max - m));
            *run.max = m;
        }
    }

    /// The chunk's weights into the denominator's lanes: lane l adds slot l, then slot
    /// l + 8 (masked slots add +0, which changes nothing).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn add_to_denominator(denom: &mut [f32; LANES], w0: __m256, w1: __m256) {
        let dp = denom.as_mut_ptr();
        let d = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(dp), w0), w1);
        _mm256_storeu_ps(dp, d);
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{KeyVectors, KvElem, Rows, Running, COLS, LANES, MAX_KEYS};
    use crate::exp2::exp2_16;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// `super::avx2::softmax_step` with the chunk's 16 slots in one vector: the same
    /// operations per slot, the maximum and the denominator reduced through the same
    /// two 8-lane halves, so the same bits.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(super) unsafe fn softmax_step(
        s: &mut [f32; MAX_KEYS],
        slots: Range<usize>,
        scale: f32,
        mut run: Running,
    ) {
        const { assert!(MAX_KEYS == 16 && LANES == 8) };
        let sp = s.as_mut_ptr();
        let mut x = _mm512_mul_ps(_mm512_loadu_ps(sp), _mm512_set1_ps(scale));
        // Slots in `slots` (all 16 for a whole chunk).
        let live: __mmask16 = (((1u32 << slots.end) - 1) & !((1u32 << slots.start) - 1)) as u16;
        let whole = live == u16::MAX;
        if !whole {
            x = _mm512_mask_blend_ps(live, _mm512_set1_ps(f32::NEG_INFINITY), x);
        }
        let (lo, hi) = halves(x);
        super::avx2::raise_max(_mm256_max_ps(lo, hi), &mut run);
        let mut w = exp2_16(_mm512_sub_ps(x, _mm512_set1_ps(*run.max)));
        if !whole {
            w = _mm512_maskz_mov_ps(live, w);
        }
        _mm512_storeu_ps(sp, w);
        let (w0, w1) = halves(w);
        super::avx2::add_to_denominator(run.denom, w0, w1);
    }

    /// Slots 0..8 and 8..16 of a chunk's vector.
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn halves(v: __m512) -> (__m256, __m256) {
        let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
        (_mm512_castps512_ps256(v), _mm256_castpd_ps(hi))
    }

    /// `super::scores` with a chunk's 16 keys in one vector: up to 4 queries x up to 4
    /// chunks a block (a span of more than 2 chunks), or up to 8 queries x 1 or 2 chunks
    /// (a shorter span).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(super) unsafe fn scores<T: KvElem>(
        qs: &[&[f32]],
        keys: KeyVectors<T>,
        nq: usize,
        out: &mut [[f32; MAX_KEYS]],
    ) {
        let nc = keys.starts.len() / 2;
        let o = out.as_mut_ptr() as *mut f32;
        let mut i0 = 0;
        while i0 < qs.len() {
            let qb = (qs.len() - i0).min(if nc > 2 { 4 } else { 8 });
            let q = &qs[i0..i0 + qb];
            let mut c0 = 0;
            while c0 < nc {
                let cb = (nc - c0).min(if qb > 4 { 2 } else { 4 });
                let at = Block { i0, c0, nq, out: o };
                match (qb, cb) {
                    (1, 1) => block::<1, 1, T>(q, keys, at),
                    (1, 2) => block::<1, 2, T>(q, keys, at),
                    (1, 3) => block::<1, 3, T>(q, keys, at),
                    (1, _) => block::<1, 4, T>(q, keys, at),
                    (2, 1) => block::<2, 1, T>(q, keys, at),
                    (2, 2) => block::<2, 2, T>(q, keys, at),
                    (2, 3) => block::<2, 3, T>(q, keys, at),
                    (2, _) => block::<2, 4, T>(q, keys, at),
                    (3, 1) => block::<3, 1, T>(q, keys, at),
                    (3, 2) => block::<3, 2, T>(q, keys, at),
                    (3, 3) => block::<3, 3, T>(q, keys, at),
                    (3, _) => block::<3, 4, T>(q, keys, at),
                    (4, 1) => block::<4, 1, T>(q, keys, at),
                    (4, 2) => block::<4, 2, T>(q, keys, at),
                    (4, 3) => block::<4, 3, T>(q, keys, at),
                    (4, _) => block::<4, 4, T>(q, keys, at),
                    (5, 1) => block::<5, 1, T>(q, keys, at),
                    (5, _) => block::<5, 2, T>(q, keys, at),
                    (6, 1) => block::<6, 1, T>(q, keys, at),
                    (6, _) => block::<6, 2, T>(q, keys, at),
                    (7, 1) => block::<7, 1, T>(q, keys, at),
                    (7, _) => block::<7, 2, T>(q, keys, at),
                    (_, 1) => block::<8, 1, T>(q, keys, at),
                    _ => block::<8, 2, T>(q, keys, at),
                }
                c0 += cb;
            }
            i0 += qb;
        }
    }

    /// Where a block of scores goes: queries from `i0`, chunks from `c0`, into the
    /// `[chunk * nq + query][slot]` rows at `out`.
    #[derive(Clone, Copy)]
    struct Block {
        i0: usize,
        c0: usize,
        nq: usize,
        out: *mut f32,
    }

    /// `Q` queries x `C` chunks: one fused multiply-add per accumulator and dimension,
    /// the query's value broadcast from memory; each accumulator is a chunk's row.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn block<const Q: usize, const C: usize, T: KvElem>(
        q: &[&[f32]],
        keys: KeyVectors<T>,
        at: Block,
    ) {
        let mut qp = [std::ptr::null::<f32>(); Q];
        for (p, q) in qp.iter_mut().zip(q) {
            *p = q.as_ptr();
        }
        let mut kp = [keys.pool.as_ptr(); C];
        for (c, p) in kp.iter_mut().enumerate() {
            *p = p.add(keys.starts[2 * (at.c0 + c)]);
        }
        let mut acc = [[_mm512_setzero_ps(); C]; Q];
        for d in 0..keys.dims {
            let off = d * keys.stride;
            let mut kv = [_mm512_setzero_ps(); C];
            for (x, p) in kv.iter_mut().zip(&kp) {
                *x = T::load16(p.add(off));
            }
            for i in 0..Q {
                let qd = _mm512_set1_ps(*qp[i].add(d));
                for c in 0..C {
                    acc[i][c] = _mm512_fmadd_ps(qd, kv[c], acc[i][c]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (c, a) in row.iter().enumerate() {
                let dst = at.out.add(((at.c0 + c) * at.nq + at.i0 + i) * MAX_KEYS);
                _mm512_storeu_ps(dst, *a);
            }
        }
    }

    /// `super::weighted_sums` for columns `c..c + 64` of `N` queries (outputs `hd`
    /// apart in `o`): 4 accumulators each, every V vector loaded once for all.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum64xn<const N: usize, T: KvElem>(
        o: &mut [f32],
        hd: usize,
        w: &[&[f32]],
        values: Rows<T>,
        c: usize,
    ) {
        const { assert!(COLS == 4 * 2 * LANES) };
        assert!(
            w.len() == N && o.len() == N * hd && c + COLS <= hd,
            "64 columns of N queries"
        );
        let mut op = [o.as_mut_ptr(); N];
        let mut wp = [std::ptr::null::<f32>(); N];
        for q in 0..N {
            op[q] = op[q].add(q * hd + c);
            wp[q] = w[q].as_ptr();
        }
        let mut acc = [[_mm512_setzero_ps(); 4]; N];
        for q in 0..N {
            for i in 0..4 {
                acc[q][i] = _mm512_loadu_ps(op[q].add(16 * i));
            }
        }
        let mut v = values.pool.as_ptr().add(values.base + c);
        for j in 0..w[0].len() {
            let mut x = [_mm512_setzero_ps(); 4];
            for (i, x) in x.iter_mut().enumerate() {
                *x = T::load16(v.add(16 * i));
            }
            for q in 0..N {
                let wv = _mm512_set1_ps(*wp[q].add(j));
                for i in 0..4 {
                    acc[q][i] = _mm512_fmadd_ps(wv, x[i], acc[q][i]);
                }
            }
            v = v.add(values.stride);
        }
        for q in 0..N {
            for i in 0..4 {
                _mm512_storeu_ps(op[q].add(16 * i), acc[q][i]);
            }
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

    /// The SIMD levels this CPU runs (none, `Avx2`, or `Avx2` and `Avx512`).
    fn simd_levels() -> Vec<Simd> {
        match Simd::detect() {
            Simd::Portable => vec![],
            Simd::Avx2 => vec![Simd::Avx2],
            Simd::Avx512 => vec![Simd::Avx2, Simd::Avx512],
        }
    }

    /// Every SIMD level gives the portable paths' bits, for head sizes with and without
    /// a tail past a multiple of 8 (or 64), odd query counts and partial key groups,
    /// with K/V pools of f32 and of f16.
    #[test]
    fn simd_and_portable_paths_agree_bit_for_bit() {
        let levels = simd_levels();
        eprintln!("SIMD levels here: {levels:?}");
        for simd in levels {
            agree_bit_for_bit(simd, |x| x.to_vec());
            agree_bit_for_bit(simd, |x| {
                x.iter().map(|&v| half::f16::from_f32(v)).collect()
            });
        }
    }

    /// Scores of 1-7 queries against spans of 1-4 chunks whose key vectors lie at
    /// scattered places of a slot-minor pool (a dimension's slots `stride` apart): the
    /// SIMD path's bits are the portable path's, and both are the dot products.
    fn agree_on_scores<T: KvElem>(simd: Simd, store: &impl Fn(&[f32]) -> Vec<T>, hd: usize) {
        let stride = 48;
        let pool = data(9 * hd * stride, hd as u32 + 1);
        let stored = store(&pool);
        let q = data(11 * hd, 7);
        let qs: Vec<&[f32]> = q.chunks(hd).collect();
        for chunks in 1..=4 {
            // Chunk c's 16 slots: block 2c + 1 of 9 (blocks of hd x stride values), at
            // slot 8c % 32.
            let starts: Vec<usize> = (0..2 * chunks)
                .map(|v| (2 * (v / 2) + 1) * hd * stride + (8 * (v / 2)) % 32 + 8 * (v % 2))
                .collect();
            let keys = KeyVectors {
                pool: &stored,
                starts: &starts,
                stride,
                dims: hd,
            };
            for nq in 1..=qs.len() {
                let mut fast = vec![[0f32; MAX_KEYS]; chunks * nq];
                let mut slow = fast.clone();
                scores(simd, &qs[..nq], keys, nq, &mut fast);
                scores(Simd::Portable, &qs[..nq], keys, nq, &mut slow);
                for (r, (f, s)) in fast.iter().zip(&slow).enumerate() {
                    assert!(
                        f.iter().zip(s).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "scores hd {hd} chunks {chunks} nq {nq} row {r}: {f:?} vs {s:?}"
                    );
                    let (c, i) = (r / nq, r % nq);
                    for (j, &got) in f.iter().enumerate() {
                        let at = starts[2 * c + j / 8] + j % 8;
                        let want: f64 = (0..hd)
                            .map(|d| qs[i][d] as f64 * stored[at + d * stride].to_f32() as f64)
                            .sum();
                        assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
                    }
                }
            }
        }
    }

    fn agree_bit_for_bit<T: KvElem>(simd: Simd, store: impl Fn(&[f32]) -> Vec<T>) {
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
            agree_on_scores(simd, &store, hd);
            for n in 1..=MAX_KEYS {
                for (a, b) in [(0, n), (n / 2, n), (0, n.div_ceil(2)), (n - 1, n)] {
                    for (start_max, cap) in
                        [(f32::NEG_INFINITY, None), (0.3, Some(0.5)), (-9.0, None)]
                    {
                        let raw: [f32; MAX_KEYS] = std::array::from_fn(|j| 4.0 * pool[j]);
                        let mut runs = [simd, Simd::Portable].map(|simd| {
                            let (mut s, mut max) = (raw, start_max);
                            let mut denom = std::array::from_fn(|l| 1.5 + l as f32);
                            let mut o = data(hd, 5);
                            let run = Running {
                                max: &mut max,
                                denom: &mut denom,
                                o: &mut o[..],
                            };
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
                        assert_eq!(bits(&fast.2), bits(&slow.2), "denominator {a}..{b}");
                        assert_eq!(bits(&fast.3), bits(&slow.3), "output hd {hd} {a}..{b}");
                    }
                }
                let w2 = [data(n, n as u32 + 3), data(n, n as u32 + 4)];
                let [mut f0, mut f1, mut s0, mut s1] = [5, 6, 5, 6].map(|seed| data(hd, seed));
                weighted_sum2(simd, [&mut f0, &mut f1], [&w2[0], &w2[1]], keys);
                weighted_sum2(Simd::Portable, [&mut s0, &mut s1], [&w2[0], &w2[1]], keys);
                let mut one = data(hd, 5);
                weighted_sum(Simd::Portable, &mut one, &w2[0], keys);
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
                weighted_sum(simd, &mut fast, &w, keys);
                weighted_sum(Simd::Portable, &mut slow, &w, keys);
                assert!(
                    fast.iter()
                        .zip(&slow)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "weighted sum hd {hd} n {n}"
                );
                // 1 to GROUP queries over the same rows: each output as `weighted_sum`
                // alone gives it.
                let ws: Vec<Vec<f32>> = (0..GROUP).map(|g| data(n, (n + 9 * g) as u32)).collect();
                for group in 1..=GROUP {
                    let w: Vec<&[f32]> = ws[..group].iter().map(|w| &w[..]).collect();
                    let mut fast = data(group * hd, 17);
                    let mut slow = fast.clone();
                    weighted_sums(simd, &mut fast, &w, keys);
                    for (o, w) in slow.chunks_exact_mut(hd).zip(&w) {
                        weighted_sum(Simd::Portable, o, w, keys);
                    }
                    assert!(
                        fast.iter()
                            .zip(&slow)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "grouped weighted sum {simd:?} hd {hd} n {n} group {group}"
                    );
                }
            }
        }
    }
}
