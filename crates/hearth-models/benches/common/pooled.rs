//! Timing kernels as the model's step calls them: from a thread of the rayon pool.
//! Called from outside the pool, each call also pays for handing the work over and
//! waking the pool (~15 µs a call on the 2-core machine), which is no part of a step.

use criterion::{black_box, Bencher};
use std::time::Instant;

/// `b.iter(f)`, with the timed loop on a pool thread.
pub fn iter_in_pool<R>(b: &mut Bencher, mut f: impl FnMut() -> R + Send) {
    b.iter_custom(|iters| {
        rayon::scope(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            t.elapsed()
        })
    })
}
