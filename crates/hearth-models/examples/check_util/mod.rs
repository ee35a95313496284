//! Helpers shared by the GPU check examples (`#[path]`-included by each).
#![allow(dead_code)]

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

/// xorshift64*: reproducible inputs in [-1, 1) without a dependency.
pub fn xorshift(mut s: u64) -> impl FnMut() -> f32 {
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A device buffer's address on `st`.
pub fn dptr<T>(s: &CudaSlice<T>, st: &CudaStream) -> u64 {
    s.device_ptr(st).0
}

/// The median (upper middle) of timings.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
