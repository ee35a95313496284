//! An output buffer shared by parallel tasks that each write their own disjoint
//! elements of it (matmul rows, attention tiles): the writers guarantee disjointness.

#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);

// SAFETY: every user writes only elements no other task writes, and the buffer outlives
// the parallel scope that uses it.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn new(out: &mut [f32]) -> Self {
        SharedOut(out.as_mut_ptr())
    }

    /// A method, so closures capture the whole (Sync) wrapper, not its raw pointer.
    pub(crate) fn at(&self, idx: usize) -> *mut f32 {
        self.0.wrapping_add(idx)
    }
}
