//! Deterministic pseudo-random test values (xorshift64), so bounds and comparisons in
//! unit tests are not flaky.

/// `n` values in [-1, 1), advancing `state` (any nonzero start).
pub(crate) fn xorshift_floats(state: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
