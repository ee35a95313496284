//! 512-bit unit kernels: two 8-row units side by side, 16 weight rows a vector, so one
//! broadcast of 4 activation bytes feeds 16 rows and a block's scales take one vector
//! operation for 16 rows. Where the CPU runs a 512-bit `vpdpbusd` at full width (Zen 5,
//! Intel server cores) an instruction does twice the work of the 256-bit kernels'.
//! Per (weight row, activation row) a format's pair kernel performs the operations of
//! its 256-bit kernels, so every kernel gives the same bits. Used from
//! `PAIR_MIN_ROWS` activation rows.

use super::kernel::Kernel;
use super::units::{unit_call_rows, ROWS};

/// Activation rows from which the pair kernels run. A single row streams the weights
/// from memory and ran slower on two units at once (`decode_step`, one sequence, the
/// Q4_1 gate/up products 0.75 -> 0.88 ms a step), as tiles of fewer than 4 rows do not
/// prefetch.
pub(crate) const PAIR_MIN_ROWS: usize = 4;

/// Whether a call of `m` activation rows with `kernel` runs the pair kernels.
pub(crate) fn use_pairs(kernel: Kernel, m: usize) -> bool {
    m >= PAIR_MIN_ROWS && kernel.effective() == Kernel::Vnni512
}

/// Defines a format's `dot_pair(kernel, kb, w, a, out, ld)`: `dot_unit` for a pair of
/// unit rows `w = [unit0 | unit1]` (`2 * kb` blocks; 16 results a row) on 512-bit
/// vectors (the calling file's `zmm::dot_pair`, where the CPU has the features), or for
/// a lone last unit (`kb` blocks: the file's `dot_unit` on it).
macro_rules! dot_pair_fn {
    ($what:literal, $unit:ty, $act:ty) => {
        pub(crate) fn dot_pair(
            kernel: Kernel,
            kb: usize,
            w: &[$unit],
            a: &[$act],
            out: &mut [f32],
            ld: usize,
        ) {
            #[cfg(target_arch = "x86_64")]
            if w.len() == 2 * kb && kernel.effective() == Kernel::Vnni512 {
                super::pairs::pair_call_rows($what, kb, a.len(), out.len(), ld);
                // SAFETY: `effective` checked the CPU features; the shapes were checked.
                return unsafe { zmm::dot_pair(kb, w, a, out, ld) };
            }
            for (i, unit) in w.chunks(kb).enumerate() {
                dot_unit(kernel, unit, a, &mut out[i * super::units::ROWS..], ld);
            }
        }
    };
}
pub(crate) use dot_pair_fn;

/// Defines a format's `zmm::dot_pair`, the pair kernel's entry compiled for AVX-512:
/// `pair_tiles!` over the module's `unpack` and `rows_dot`, with the format's
/// `PairTiling`.
macro_rules! zmm_entry {
    ($unit:ty, $act:ty, $tiling:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
        pub(super) unsafe fn dot_pair(
            kb: usize,
            w: &[$unit],
            a: &[$act],
            out: &mut [f32],
            ld: usize,
        ) {
            const PAIR_TILING: $crate::quant::pairs::PairTiling = $tiling;
            $crate::quant::pairs::pair_tiles!(
                kb,
                w,
                a,
                out,
                ld,
                PAIR_TILING,
                |u0, u1| unpack(u0, u1),
                rows_dot
            );
        }
    };
}
pub(crate) use zmm_entry;

/// `unit_call_rows` for 16 results a row.
pub(crate) fn pair_call_rows(what: &str, kb: usize, a_len: usize, out_len: usize, ld: usize) {
    let t = unit_call_rows(what, kb, a_len, out_len, ld);
    assert!(
        t == 0 || out_len >= (t - 1) * ld + 2 * ROWS,
        "{what} pair output"
    );
}

/// How a format's pair kernel walks a tile (measured per format: BENCHMARKS.md, "Q4_K
/// and Q6_K at 8 rows").
#[derive(Clone, Copy)]
pub(crate) struct PairTiling {
    /// A tile of 8 rows in one `rows_dot::<8>` (each weight vector split once for the
    /// 8), else as two of 4 (fewer live registers).
    pub(crate) eight_in_one: bool,
    /// The first tile also asks for the weights `PREFETCH_L2_BYTES` ahead into L2.
    pub(crate) l2_prefetch: bool,
}

impl PairTiling {
    /// Two calls of 4 rows, L1 prefetch only.
    pub(crate) const FOURS: PairTiling = PairTiling {
        eight_in_one: false,
        l2_prefetch: false,
    };

    /// One call of 8 rows, and the L2 prefetch too.
    pub(crate) const EIGHTS: PairTiling = PairTiling {
        eight_in_one: true,
        l2_prefetch: true,
    };
}

/// The pair kernels' loop, expanded inside a kernel compiled for its features:
/// activation rows in tiles of 8, 4, then 1 (each size a constant, so the accumulators
/// stay in registers); the first tile prefetches both units' blocks (`prefetch_pair`),
/// as the 256-bit kernels do; per block, `$unpack` (with the
/// blocks bound to `$u0`, `$u1`) prepares the weights once for the tile and
/// `$rows_dot::<R>` folds them into 8 rows at a time (where `$tiling` says so) or 4,
/// then 1; each row's 16 results are stored as one vector.
macro_rules! pair_tiles {
    ($kb:expr, $w:expr, $a:expr, $out:expr, $ld:expr, $tiling:expr,
     |$u0:ident, $u1:ident| $unpack:expr, $rows_dot:ident) => {{
        let (kb, w, a, out, ld) = ($kb, $w, $a, $out, $ld);
        let t = a.len() / kb;
        let mut t0 = 0;
        while t0 < t {
            let r = match t - t0 {
                8.. => 8,
                4..=7 => 4,
                _ => 1,
            };
            match r {
                8 => $crate::quant::pairs::pair_tiles!(@tile 8, kb, w, a, out, ld, t0, $tiling, |$u0, $u1| $unpack, $rows_dot),
                4 => $crate::quant::pairs::pair_tiles!(@tile 4, kb, w, a, out, ld, t0, $tiling, |$u0, $u1| $unpack, $rows_dot),
                _ => $crate::quant::pairs::pair_tiles!(@tile 1, kb, w, a, out, ld, t0, $tiling, |$u0, $u1| $unpack, $rows_dot),
            }
            t0 += r;
        }
    }};
    (@tile $r:literal, $kb:ident, $w:ident, $a:ident, $out:ident, $ld:ident, $t0:ident,
     $tiling:expr, |$u0:ident, $u1:ident| $unpack:expr, $rows_dot:ident) => {{
        const R: usize = $r;
        let mut acc = [_mm512_setzero_ps(); 8];
        let (w0, w1) = $w.split_at($kb);
        for (b, ($u0, $u1)) in w0.iter().zip(w1).enumerate() {
            if $t0 == 0 {
                $crate::quant::pairs::prefetch_pair($u0, $u1, b, $kb, $tiling.l2_prefetch);
            }
            let unpacked = $unpack;
            let blocks = |j: usize| &*$a.as_ptr().add(($t0 + j) * $kb + b);
            let [a0, a1, a2, a3, a4, a5, a6, a7] = &mut acc;
            if R == 8 && $tiling.eight_in_one {
                let all = [a0, a1, a2, a3, a4, a5, a6, a7];
                $rows_dot::<8>(&unpacked, std::array::from_fn(|i| blocks(i)), all);
            } else if R >= 4 {
                $rows_dot::<4>(&unpacked, std::array::from_fn(|i| blocks(i)), [a0, a1, a2, a3]);
                if R == 8 {
                    let bs = std::array::from_fn(|i| blocks(4 + i));
                    $rows_dot::<4>(&unpacked, bs, [a4, a5, a6, a7]);
                }
            } else {
                $rows_dot::<1>(&unpacked, [blocks(0)], [a0]);
            }
        }
        for (j, acc) in acc.iter().enumerate().take(R) {
            // In bounds: `pair_call_rows` checked `out` for every row's 16 results.
            _mm512_storeu_ps($out.as_mut_ptr().add(($t0 + j) * $ld), *acc);
        }
    }};
}
pub(crate) use pair_tiles;

/// Prefetches both units' weights `PREFETCH_BYTES` past block `b` of a pair (`u0`,
/// `u1` its blocks `b`) into L1, and with `l2` also `PREFETCH_L2_BYTES` past it into
/// L2, in the order the pairs are read: past a unit's last block come the next pair's
/// first blocks, two units (`2 * kb` blocks) on, not the other unit's.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_pair<U>(u0: &U, u1: &U, b: usize, kb: usize, l2: bool) {
    use super::units::{prefetch_lines, PREFETCH_BYTES, PREFETCH_L2_BYTES};
    use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1};
    let ahead = |bytes: usize| {
        let at = b + bytes.div_ceil(std::mem::size_of::<U>());
        (at / kb) * 2 * kb + at % kb - b
    };
    let near = ahead(PREFETCH_BYTES);
    prefetch_lines::<_MM_HINT_T0, U>(u0, near);
    prefetch_lines::<_MM_HINT_T0, U>(u1, near);
    if l2 {
        let far = ahead(PREFETCH_L2_BYTES);
        prefetch_lines::<_MM_HINT_T1, U>(u0, far);
        prefetch_lines::<_MM_HINT_T1, U>(u1, far);
    }
}

/// Two 32-byte vectors (the same part of two units' blocks) as one, `a` low.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn join(
    a: *const std::arch::x86_64::__m256i,
    b: *const std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_loadu_si256(a)),
        _mm256_loadu_si256(b),
    )
}

/// Two units' 8 f16 values (scales, minimums) as one vector of 16, unit 0 low.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn halves16(a: &[u16; ROWS], b: &[u16; ROWS]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm_loadu_si128(a.as_ptr() as *const __m128i)),
        _mm_loadu_si128(b.as_ptr() as *const __m128i),
    )
}

/// `x`'s `m` rows of `k` values quantized into blocks of `block_len` values (`quantize`,
/// `zero` before), after checking `x`'s size: every repacked format's `RowMatrix::quantize`.
pub(crate) fn quantize_checked<A, Q>(
    name: &str,
    x: &[f32],
    (m, k, block_len): (usize, usize, usize),
    (zero, quantize): (A, Q),
    acts: &mut Vec<A>,
) -> candle_core::Result<()>
where
    A: Clone + Send + Sync,
    Q: Fn(&[f32], &mut [A]) + Sync + Send,
{
    if x.len() != m * k {
        candle_core::bail!("{name} quantize: x has {} values for m={m} k={k}", x.len());
    }
    if m == 0 || k == 0 {
        acts.clear();
        return Ok(());
    }
    super::tiled::quantize_rows(x, (m, k, k / block_len), zero, quantize, acts);
    Ok(())
}

/// `y[m, n] = x · Wᵀ` over `units` (`[unit][block]`, `kb` blocks a unit row) and the
/// quantized activation rows `acts`: one unit row a task item (`dot_unit(kernel, w, a,
/// out, ld)`), or, where `use_pairs`, two (`dot_pair(kernel, kb, w, a, out, ld)`, on a
/// pair or a lone last unit). Nothing to compute for no rows; zeros for `kb == 0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<W, A, U, P>(
    kernel: Kernel,
    units: &[W],
    kb: usize,
    n: usize,
    acts: &[A],
    m: usize,
    y: &mut [f32],
    (dot_unit, dot_pair): (U, P),
) where
    W: Sync,
    A: Sync,
    U: Fn(Kernel, &[W], &[A], &mut [f32], usize) + Sync,
    P: Fn(Kernel, usize, &[W], &[A], &mut [f32], usize) + Sync,
{
    if m == 0 || n == 0 {
        return;
    }
    if kb == 0 {
        y.fill(0.0);
        return;
    }
    if use_pairs(kernel, m) {
        let dot = |w: &[W], a: &[A], out: &mut [f32], ld| dot_pair(kernel, kb, w, a, out, ld);
        super::tiled::matmul_units(units, 2 * kb, 2 * ROWS, n, acts, kb, m, y, dot)
    } else {
        let dot = |w: &[W], a: &[A], out: &mut [f32], ld| dot_unit(kernel, w, a, out, ld);
        super::units::unit_matmul(units, kb, n, acts, m, y, dot)
    }
}
