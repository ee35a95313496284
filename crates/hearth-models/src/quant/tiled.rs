//! The matmul driver shared by the quantized formats: work is split over chunks of
//! weight rows (rayon); within a chunk, activation rows come in tiles, so each weight
//! row is read from memory once per call and reused from cache for the whole batch.

use rayon::prelude::*;

/// Activation rows per tile: 64 rows of k = 1536 are ~120 KiB of Q8 blocks, an L2's worth.
const ROW_TILE: usize = 64;

/// `y[r * n + i] = dot(row i of data, acts row r)` for `n` weight rows of `row_bytes`
/// bytes each and `m` activation rows of `kb` blocks each. `dot(w, a, out)` fills
/// `out[j]` with the product of weight row `w` and activation row `j` of `a`.
pub(crate) fn matmul_rows<A, F>(
    data: &[u8],
    row_bytes: usize,
    acts: &[A],
    kb: usize,
    m: usize,
    y: &mut [f32],
    dot: F,
) where
    A: Sync,
    F: Fn(&[u8], &[A], &mut [f32]) + Sync,
{
    if m == 1 {
        dot_all(data, row_bytes, acts, kb, 1, y, &dot);
        return;
    }
    let n = y.len() / m.max(1);
    // Results land transposed, [n, m], so each task owns a contiguous slice.
    let mut yt = vec![0f32; n * m];
    dot_all(data, row_bytes, acts, kb, m, &mut yt, &dot);
    y.par_chunks_mut(n).enumerate().for_each(|(r, yr)| {
        for (i, v) in yr.iter_mut().enumerate() {
            *v = yt[i * m + r];
        }
    });
}

/// `yt[i * m + r] = dot(row i, activation row r)` for all i, r.
fn dot_all<A, F>(
    data: &[u8],
    row_bytes: usize,
    acts: &[A],
    kb: usize,
    m: usize,
    yt: &mut [f32],
    dot: &F,
) where
    A: Sync,
    F: Fn(&[u8], &[A], &mut [f32]) + Sync,
{
    let n = yt.len() / m.max(1);
    // Weight rows per task: a few tasks per thread balances the load.
    let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(4);
    yt.par_chunks_mut(chunk * m)
        .enumerate()
        .for_each(|(c, out)| {
            let rows = out.len() / m;
            for r0 in (0..m).step_by(ROW_TILE) {
                let r1 = (r0 + ROW_TILE).min(m);
                let a = &acts[r0 * kb..r1 * kb];
                for i in 0..rows {
                    let start = (c * chunk + i) * row_bytes;
                    let w = &data[start..start + row_bytes];
                    dot(w, a, &mut out[i * m + r0..i * m + r1]);
                }
            }
        });
}
