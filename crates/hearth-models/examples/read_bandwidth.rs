//! This machine's memory read bandwidth, the limit a batch-1 decode step is held to (it
//! reads every weight once): `cargo run --release -p hearth-models --example
//! read_bandwidth [THREADS...]` (1 and 2 by default) reads 1 GiB, each thread its own
//! contiguous part, and prints the best of 5 passes. numpy's `sum` over the same size,
//! used before, runs ~20% below: its float adds, not memory, bound one core.

use std::time::Instant;

const BYTES: usize = 1 << 30;
const PASSES: usize = 5;

/// XOR of `words`: in aligned 512-bit loads where the CPU has them, else with 8
/// independent accumulators.
fn fold(words: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected.
        return unsafe { fold_avx512(words) };
    }
    fold_portable(words)
}

/// 4 vectors (256 bytes) a round into 4 accumulators; the tail portably.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fold_avx512(words: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    // From the first 64-byte boundary: a vector across two cache lines reads both
    // (1 thread: 34 against 41 GB/s).
    let head = words.as_ptr().align_offset(64).min(words.len());
    let (head, words) = words.split_at(head);
    let rounds = words.len() / 32;
    let p = words.as_ptr() as *const __m512i;
    let (mut a0, mut a1, mut a2, mut a3) = (
        _mm512_setzero_si512(),
        _mm512_setzero_si512(),
        _mm512_setzero_si512(),
        _mm512_setzero_si512(),
    );
    for r in 0..rounds {
        // SAFETY: vectors 4r..4r + 4 lie inside `words` (r < len / 32), 64-byte aligned.
        unsafe {
            let q = p.add(4 * r);
            a0 = _mm512_xor_si512(a0, _mm512_load_si512(q));
            a1 = _mm512_xor_si512(a1, _mm512_load_si512(q.add(1)));
            a2 = _mm512_xor_si512(a2, _mm512_load_si512(q.add(2)));
            a3 = _mm512_xor_si512(a3, _mm512_load_si512(q.add(3)));
        }
    }
    let all = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    let lanes: [u64; 8] = std::mem::transmute(all);
    let rest = fold_portable(head) ^ fold_portable(&words[rounds * 32..]);
    lanes.iter().fold(rest, |a, &w| a ^ w)
}

/// 8 independent accumulators, so loads, not a dependency chain, bound the loop.
fn fold_portable(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = words.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(0, |a, &w| a ^ w);
    for c in chunks {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a ^= w;
        }
    }
    acc.iter().fold(tail, |a, &w| a ^ w)
}

fn main() {
    let threads: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let threads = if threads.is_empty() {
        vec![1, 2]
    } else {
        threads
    };
    // Every page written, so reads hit memory rather than the shared zero page.
    let words: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    for n in threads.into_iter().filter(|&n| n > 0) {
        let part = words.len().div_ceil(n);
        let mut best = f64::MAX;
        let mut sink = 0;
        for _ in 0..PASSES {
            let t = Instant::now();
            sink ^= std::thread::scope(|s| {
                let handles: Vec<_> = words
                    .chunks(part)
                    .map(|w| s.spawn(move || fold(w)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(0))
                    .fold(0, |a, w| a ^ w)
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{n} thread(s): {:.1} GB/s (best of {PASSES} reads of 1 GiB; check {sink:x})",
            BYTES as f64 / best / 1e9
        );
    }
}
