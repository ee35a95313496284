//! The matmul driver shared by the quantized formats: work is split over chunks of
//! weight rows (rayon); within a chunk, activation rows come in tiles, so each weight
//! row is read from memory once per call and reused from cache for the whole batch.

use rayon::prelude::*;

/// Activation rows per tile: 64 rows of k = 1536 are ~120 KiB of Q8 blocks, an L2's worth.
const ROW_TILE: usize = 64;

/// `y` shared across tasks that write disjoint elements of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint indices (their own weight rows' columns), see below.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// A method, so closures capture the whole (Sync) wrapper, not its raw pointer.
    fn at(&self, idx: usize) -> *mut f32 {
        self.0.wrapping_add(idx)
    }
}

/// `y[r * n + i] = dot(row i of data, acts row r)` for `n` weight rows of `row_len`
/// elements (bytes or blocks) each and `m` activation rows of `kb` blocks each. `dot(w, r0, a, out)` fills
/// `out[j]` with the product of weight row `w` and activation row `j` of `a`, which
/// starts at row `r0` (a multiple of 4) of the whole batch.
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
    F: Fn(&[W], usize, &[A], &mut [f32]) + Sync,
{
    let n = data.len() / row_len.max(1);
    assert!(
        y.len() == m * n && acts.len() == m * kb,
        "matmul_rows: bad sizes"
    );
    if m == 1 {
        // One output per weight row: chunks of y are the tasks' own slices.
        let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(4);
        y.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
            for (i, o) in out.chunks_mut(1).enumerate() {
                let start = (c * chunk + i) * row_len;
                dot(&data[start..start + row_len], 0, acts, o);
            }
        });
        return;
    }
    let y_ptr = Out(y.as_mut_ptr());
    let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(4);
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let rows = c * chunk..((c + 1) * chunk).min(n);
        // This task's results as [row, m]: contiguous for `dot`, scattered at the end.
        let mut local = vec![0f32; rows.len() * m];
        for r0 in (0..m).step_by(ROW_TILE) {
            let r1 = (r0 + ROW_TILE).min(m);
            let a = &acts[r0 * kb..r1 * kb];
            for (li, i) in rows.clone().enumerate() {
                let w = &data[i * row_len..(i + 1) * row_len];
                dot(w, r0, a, &mut local[li * m + r0..li * m + r1]);
            }
        }
        for (li, i) in rows.enumerate() {
            for r in 0..m {
                // SAFETY: i < n and r < m, so the index is inside y (asserted above);
                // weight row i belongs to this task alone, so no other task writes it.
                unsafe { *y_ptr.at(r * n + i) = local[li * m + r] };
            }
        }
    });
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

/// Quantizes each of the `m` rows of `x` (length `k`) into `kb` activation blocks, in
/// parallel: the one activation allocation of a call.
pub(crate) fn quantize_rows<B, Q>(
    x: &[f32],
    m: usize,
    k: usize,
    kb: usize,
    zero: B,
    quantize: Q,
) -> Vec<B>
where
    B: Clone + Send + Sync,
    Q: Fn(&[f32], &mut [B]) + Sync + Send,
{
    let mut acts = vec![zero; m * kb];
    acts.par_chunks_mut(kb)
        .zip(x.par_chunks(k))
        .with_min_len(8)
        .for_each(|(a, x)| quantize(x, a));
    acts
}
