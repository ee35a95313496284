//! A safetensors file from untrusted bytes: header parse and checks, then every tensor
//! loaded as f32 as the Hugging Face loader does. Errors are fine; panics, huge
//! allocations and timeouts are bugs.
#![no_main]

use candle_core::Device;
use hearth_models::safetensors::load_bytes_f32;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tensors) = load_bytes_f32(data, &Device::Cpu) {
        // A tensor that loaded came from the file's bytes: it cannot hold more values
        // than the file has bytes (the smallest accepted dtype, F16/BF16, takes 2).
        let n: usize = tensors.iter().map(|(_, t)| t.elem_count()).sum();
        assert!(n <= data.len() / 2, "{n} values from {} bytes", data.len());
    }
});
