//! What the 8-row unit formats (`Q4_1X8`, `Q8_0X8`, `Q4KX8`, `Q6KX8`) share: repacking a file's
//! row-major blocks into units on load, the shape checks of a unit kernel call, and the
//! SIMD kernels' loop over tiles of activation rows (`unit_tiles!`).

use rayon::prelude::*;

/// Weight rows per unit.
pub(crate) const ROWS: usize = 8;

/// How far ahead of the block in use a kernel prefetches its weight stream, in bytes
/// (rounded up to whole blocks). The first tile of a call, whatever its rows, reads the
/// weights from memory; on a Zen 5 the default model's step ran faster with the
/// prefetch at 1 row (`decode_step`, 2.52 -> 2.29 ms) and at 8 (4096 bytes against
/// 1280: 5.08 -> 4.92 ms), and the 3B Q4_K file's 1-row step 46.2 -> 43.6 ms.
#[cfg(target_arch = "x86_64")]
pub(crate) const PREFETCH_BYTES: usize = 4096;

/// How far ahead a pair kernel that asks for it (`PairTiling::l2_prefetch`) also
/// prefetches into L2. At 8 rows the Q4_K pair kernel computes long enough per block
/// that L1 prefetches alone left the weight reads and the arithmetic one after the
/// other: a cold 8192 x 3072 matrix took the hot time plus the streaming time; with
/// this second prefetch 618 -> 483 us (8 rows, a loop of `matmul_with` calls). At
/// 12288 bytes or more it gained little (past a short unit row the far lines are the
/// next pair's, often another task's).
#[cfg(target_arch = "x86_64")]
pub(crate) const PREFETCH_L2_BYTES: usize = 8192;

/// `PREFETCH_BYTES` in blocks of `U`.
#[cfg(target_arch = "x86_64")]
pub(crate) const fn blocks_ahead<U>() -> usize {
    PREFETCH_BYTES.div_ceil(std::mem::size_of::<U>())
}

/// `blocks_ahead` for `block`'s type.
#[cfg(target_arch = "x86_64")]
pub(crate) const fn blocks_ahead_of<U>(_block: &U) -> usize {
    blocks_ahead::<U>()
}

/// Asks for the block `ahead` blocks past `block` (same type, contiguous) in L1, line by
/// line.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_ahead<U>(block: &U, ahead: usize) {
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_T0 }, U>(block, ahead)
}

/// Asks for the block `ahead` blocks past `block` (same type, contiguous) line by line,
/// with the prefetch hint `HINT` (the cache level). A prefetch never faults, so one past
/// a slice's end (the next unit row, or nothing) is harmless.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_lines<const HINT: i32, U>(block: &U, ahead: usize) {
    use std::arch::x86_64::_mm_prefetch;
    let size = std::mem::size_of::<U>();
    let at = (block as *const U as *const i8).wrapping_add(ahead * size);
    for off in (0..size).step_by(64) {
        // SAFETY: a prefetch reads nothing architecturally and cannot fault.
        unsafe { _mm_prefetch::<HINT>(at.wrapping_add(off)) };
    }
}

/// The `n.div_ceil(8) * kb` units (`[unit][block]`) of a row-major matrix of `n` rows of
/// `kb` file blocks of `block_bytes` each: `set_row(unit, r, block)` puts a file block
/// into row `r` of a unit; rows past `n` stay `zero`'s.
pub(crate) fn repack<U, F>(
    n: usize,
    kb: usize,
    block_bytes: usize,
    bytes: &[u8],
    zero: U,
    set_row: F,
) -> Vec<U>
where
    U: Copy + Send + Sync,
    F: Fn(&mut U, usize, &[u8]) + Sync,
{
    let mut units = crate::huge_pages::filled(n.div_ceil(ROWS) * kb, zero);
    units
        .par_chunks_mut(kb.max(1))
        .enumerate()
        .for_each(|(g, unit_row)| {
            for (b, u) in unit_row.iter_mut().enumerate() {
                for r in 0..ROWS.min(n - g * ROWS) {
                    let at = ((g * ROWS + r) * kb + b) * block_bytes;
                    set_row(u, r, &bytes[at..at + block_bytes]);
                }
            }
        });
    units
}

/// The activation rows of a unit kernel call (`a_len / kb`), after the checks the SIMD
/// paths rely on (they read and write through raw pointers): whole rows of `kb > 0`
/// blocks, and room in `out` for each row's 8 results at `j * ld`.
pub(crate) fn unit_call_rows(
    what: &str,
    kb: usize,
    a_len: usize,
    out_len: usize,
    ld: usize,
) -> usize {
    let t = a_len / kb.max(1);
    assert!(kb > 0 && a_len == t * kb, "{what} unit shape");
    assert!(
        t == 0 || out_len >= (t - 1) * ld + ROWS,
        "{what} unit output"
    );
    t
}

/// The SIMD unit kernels' loop, expanded inside a kernel compiled for its features:
/// activation rows in tiles of 8, then 4, then 1, each tile's size a constant so that
/// its accumulators (one `__m256` a row, one lane a weight row) stay in registers across
/// the unit row's blocks (with a size known only at run time they lived on the stack,
/// and every block paid a store and a reload a row); the first tile prefetches the unit
/// row's blocks `PREFETCH_BYTES` ahead; per block, `$unpack` (with the block
/// bound to `$u`) prepares the weights once for the tile, and `$rows_dot::<R>(&unpacked,
/// blocks, accs)` folds it into 4 rows at a time, then 1; each row's 8 results are stored
/// as one vector at `out[j * ld]`. Callers check the shapes first (`unit_call_rows`).
macro_rules! unit_tiles {
    ($w:expr, $a:expr, $out:expr, $ld:expr, |$u:ident| $unpack:expr, $rows_dot:ident) => {{
        let (w, a, out, ld) = ($w, $a, $out, $ld);
        let kb = w.len();
        let t = a.len() / kb;
        let mut t0 = 0;
        while t0 < t {
            let left = t - t0;
            if left >= 8 {
                unit_tiles!(@tile 8, w, a, out, ld, kb, t0, |$u| $unpack, $rows_dot);
                t0 += 8;
            } else if left >= 4 {
                unit_tiles!(@tile 4, w, a, out, ld, kb, t0, |$u| $unpack, $rows_dot);
                t0 += 4;
            } else {
                unit_tiles!(@tile 1, w, a, out, ld, kb, t0, |$u| $unpack, $rows_dot);
                t0 += 1;
            }
        }
    }};
    (@tile $r:literal, $w:ident, $a:ident, $out:ident, $ld:ident, $kb:ident, $t0:ident,
     |$u:ident| $unpack:expr, $rows_dot:ident) => {{
        const R: usize = $r;
        // Always 8, named one by one: no run-time index, so no stack slot.
        let mut acc = [_mm256_setzero_ps(); 8];
        for (b, $u) in $w.iter().enumerate() {
            if $t0 == 0 {
                super::super::units::prefetch_ahead($u, super::super::units::blocks_ahead_of($u));
            }
            let unpacked = $unpack;
            let blocks = |j: usize| &*$a.as_ptr().add(($t0 + j) * $kb + b);
            let [a0, a1, a2, a3, a4, a5, a6, a7] = &mut acc;
            if R >= 4 {
                let bs = std::array::from_fn(|i| blocks(i));
                $rows_dot::<4>(&unpacked, bs, [a0, a1, a2, a3]);
                if R == 8 {
                    let bs = std::array::from_fn(|i| blocks(4 + i));
                    $rows_dot::<4>(&unpacked, bs, [a4, a5, a6, a7]);
                }
            } else {
                $rows_dot::<1>(&unpacked, [blocks(0)], [a0]);
            }
        }
        for (j, acc) in acc.iter().enumerate().take(R) {
            // In bounds: `unit_call_rows` checked `out` for every row.
            _mm256_storeu_ps($out.as_mut_ptr().add(($t0 + j) * $ld), *acc);
        }
    }};
}
pub(crate) use unit_tiles;

/// A unit kernel call: shapes checked (`unit_call_rows`), then the `vnni` or `avx2`
/// module of the calling file, whichever `$kernel` runs on this CPU, or `$scalar`.
macro_rules! dispatch_unit {
    ($what:literal, $kernel:expr, $scalar:ident, $w:expr, $a:expr, $out:expr, $ld:expr) => {{
        let (w, a, out, ld) = ($w, $a, $out, $ld);
        super::units::unit_call_rows($what, w.len(), a.len(), out.len(), ld);
        match $kernel.effective() {
            // SAFETY: `effective` checked the CPU features; the shapes were checked.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni | Kernel::Vnni512 => unsafe { vnni::dot_unit(w, a, out, ld) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::dot_unit(w, a, out, ld) },
            _ => $scalar(w, a, out, ld),
        }
    }};
}
pub(crate) use dispatch_unit;

/// `y[m, n] = x · Wᵀ` over `units` (`[unit][block]`, `kb` blocks a unit row) and the
/// quantized activation rows `acts`: `matmul_units` with 8 rows a unit.
pub(crate) fn unit_matmul<W, A, F>(
    units: &[W],
    kb: usize,
    n: usize,
    acts: &[A],
    m: usize,
    y: &mut [f32],
    dot: F,
) where
    W: Sync,
    A: Sync,
    F: Fn(&[W], &[A], &mut [f32], usize) + Sync,
{
    super::tiled::matmul_units(units, kb, ROWS, n, acts, kb, m, y, dot)
}
