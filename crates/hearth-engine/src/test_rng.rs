//! Reproducible pseudo-random numbers for unit tests (xorshift64), without a dependency.

/// Numbers in [0, 1) from `state` (any nonzero start).
pub(crate) fn uniforms(mut state: u64) -> impl FnMut() -> f32 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    }
}
