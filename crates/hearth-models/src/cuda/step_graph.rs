//! What a captured decode graph needs: step inputs at fixed device addresses, the
//! graph itself, and the shape it was captured for.

use cudarc::driver::CudaSlice;

/// Device-side step inputs in one i32 buffer: token ids, slots, last rows of the
/// sequences that want logits, then the attention arrays (`DeviceBatch::host_arrays`).
/// Kept across steps at fixed addresses, so that a captured graph reads each step's.
pub(super) struct StepInputs {
    pub(super) buf: CudaSlice<i32>,
    /// Block-table width every step is padded to (grows, never shrinks).
    pub(super) width: usize,
}

/// A captured graph, owned by the model.
pub(super) struct Graph(pub(super) cudarc::driver::CudaGraph);

// Safety: CUDA graphs may be used from any thread as long as calls on one graph are
// serialized; this one lives inside the model, which moves to the engine thread and
// is used by that thread alone (`&mut self` for every replay).
unsafe impl Send for Graph {}

/// The step's shape a captured decode graph was made for.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct GraphKey {
    pub(super) tokens: usize,
    pub(super) width: usize,
}
