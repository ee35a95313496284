//! The inputs of hearth's two-input candle ops on the CPU (`gated_mul`, `rms_norm`):
//! each must be f32 and laid out contiguously, and is handed over as its slice.

use candle_core::{CpuStorage, Layout, Result};

/// The two inputs' values as slices; `op` names the op in the errors.
pub(crate) fn f32_pair<'a>(
    op: &str,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32])> {
    let (a, b) = match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => (a, b),
        _ => candle_core::bail!("{op} takes f32 tensors"),
    };
    let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        candle_core::bail!("{op} takes contiguous tensors")
    };
    Ok((&a[a0..a1], &b[b0..b1]))
}
