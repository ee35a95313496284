//! Giving the allocator's free memory back to the system once a model is loaded.
//! Loading makes many short-lived buffers (f32 copies of BF16 tensors, quantization
//! scratch); glibc keeps freed chunks of them in its heap, where they would count as
//! resident memory for the life of the server although nothing uses them.

/// Returns free heap pages to the system (glibc's `malloc_trim`); a no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
