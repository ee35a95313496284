//! One compute pool per process. hearth's kernels run on rayon's pool, sized to the
//! cores; candle runs its element-wise ops on a pool of its own whose extra thread spins
//! 25,000 times after each op. On a 2-core machine that thread took ~10% of the samples
//! of a long prefill and slowed it ~10%. With `CANDLE_NUM_THREADS=1` candle runs those
//! ops on the calling (rayon) thread instead; its matmuls keep using rayon.

/// Sets `CANDLE_NUM_THREADS=1` unless the user set it. Call first thing in `main`,
/// before any other thread exists: nothing may read the environment meanwhile.
pub fn single_compute_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
