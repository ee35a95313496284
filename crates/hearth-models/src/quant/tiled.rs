//! The matmul driver shared by the quantized formats: work is split over chunks of
//! weight rows (rayon); within a chunk, activation rows come in tiles, so each weight
//! row is read from memory once per call and reused from cache for the whole batch.
//! Each task collects its results by activation row and copies them out row by row.

use crate::shared_out::SharedOut;
use rayon::prelude::*;

/// Activation rows per tile: 64 rows of k = 1536 are ~120 KiB of Q8 blocks, an L2's worth.
const ROW_TILE: usize = 64;

/// `y[r * n + i] = dot(row i of data, acts row r)` for `n` weight rows of `row_len`
/// elements (bytes or blocks) each and `m` activation rows of `kb` blocks each;
/// `dot(w, a)` is one weight row against one activation row.
pub(crate) fn matmul_rows<W, A, F>(
    data: &[W],
    row_len: usize,
    acts: &[A],
    kb: usize,
    m: usize,
    y: &mut [f32],
    dot: F,
) where
    W: Sync,
    A: Sync,
    F: Fn(&[W], &[A]) -> f32 + Sync,
{
    let n = data.len() / row_len.max(1);
    matmul_units(data, row_len, 1, n, acts, kb, m, y, |w, a, out, ld| {
        for (j, a) in a.chunks_exact(kb.max(1)).enumerate() {
            out[j * ld] = dot(w, a);
        }
    });
}

/// As `matmul_rows` for data whose units of `row_len` elements each hold `per` weight
/// rows interleaved (the last unit padded past `n` rows, or shorter: a pair of 8-row
/// units whose second is missing). `dot(w, a, out, ld)` gets one unit `w` and a tile `a`
/// of activation rows, and fills `out[j * ld + rr]` for each tile row `j` and unit row
/// `rr`: the unit's `per` results for a row are adjacent, so a kernel stores them as one
/// vector.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_units<W, A, F>(
    data: &[W],
    row_len: usize,
    per: usize,
    n: usize,
    acts: &[A],
    kb: usize,
    m: usize,
    y: &mut [f32],
    dot: F,
) where
    W: Sync,
    A: Sync,
    F: Fn(&[W], &[A], &mut [f32], usize) + Sync,
{
    let units = data.len().div_ceil(row_len.max(1));
    assert!(
        y.len() == m * n && acts.len() == m * kb && units * per >= n,
        "matmul_rows: bad sizes"
    );
    let chunk = units
        .div_ceil(rayon::current_num_threads() * 4)
        .max(4usize.div_ceil(per));
    let y_ptr = SharedOut::new(y);
    (0..units.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let us = c * chunk..((c + 1) * chunk).min(units);
        // This task's results as [m][ld], ld its weight rows (padding included), in
        // the worker's buffer: the kernels call nothing that could run another task
        // on this thread, so it is borrowed once at a time.
        let ld = us.len() * per;
        RESULTS.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            buf.resize(m * ld, 0.0);
            let local = &mut buf[..];
            for r0 in (0..m).step_by(ROW_TILE) {
                let r1 = (r0 + ROW_TILE).min(m);
                let a = &acts[r0 * kb..r1 * kb];
                for (li, u) in us.clone().enumerate() {
                    let w = &data[u * row_len..((u + 1) * row_len).min(data.len())];
                    dot(w, a, &mut local[r0 * ld + li * per..], ld);
                }
            }
            // Weight rows first.. of every activation row: one contiguous copy each.
            let first = us.start * per;
            let len = (us.end * per).min(n) - first;
            for r in 0..m {
                let src = &local[r * ld..r * ld + len];
                // SAFETY: r < m and first + len <= n, so the range is inside y (asserted
                // above); these weight rows belong to this task alone, so no other task
                // writes them.
                unsafe {
                    std::ptr::copy_nonoverlapping(src.as_ptr(), y_ptr.at(r * n + first), len)
                };
            }
        });
    });
}

thread_local! {
    /// A worker's buffer for one task's results (`matmul_units`), kept from call to
    /// call instead of allocated per task (~1,500 allocations a decode step).
    static RESULTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks the shapes of `y[m, n] = x[m, k] · Wᵀ` for format `name`; returns `false` when
/// nothing is left to compute (`y` is already final: empty, or zeros for `k == 0`).
pub(crate) fn check_shapes(
    name: &str,
    x: &[f32],
    y: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) -> candle_core::Result<bool> {
    if x.len() != m * k || y.len() != m * n {
        candle_core::bail!(
            "{name} matmul: x has {} values, y {}, for m={m} k={k} n={n}",
            x.len(),
            y.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(false);
    }
    if k == 0 {
        y.fill(0.0);
        return Ok(false);
    }
    Ok(true)
}

/// The fewest activation rows one quantizing task takes: a decode step's 8 rows in two
/// tasks were 1.1% faster a step than in one (`decode_step`, alternated step by step).
const QUANTIZE_ROWS_A_TASK: usize = 4;

/// Quantizes each of the `m` rows of `x` (length `k`) into `kb` activation blocks, in
/// parallel, into `acts` (resized to `m * kb`: a buffer kept from call to call
/// allocates only when it grows).
pub(crate) fn quantize_rows<B, Q>(
    x: &[f32],
    (m, k, kb): (usize, usize, usize),
    zero: B,
    quantize: Q,
    acts: &mut Vec<B>,
) where
    B: Clone + Send + Sync,
    Q: Fn(&[f32], &mut [B]) + Sync + Send,
{
    acts.clear();
    acts.resize(m * kb, zero);
    acts.par_chunks_mut(kb)
        .zip(x.par_chunks(k))
        .with_min_len(QUANTIZE_ROWS_A_TASK)
        .for_each(|(a, x)| quantize(x, a));
}
