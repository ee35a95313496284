//! The inputs of hearth's candle ops on the CPU (`gated_mul`, `rms_norm`, `rotary`):
//! each must be f32 and laid out contiguously, and is handed over as its slice.

use candle_core::{CpuStorage, Layout, Result};

/// The two inputs' values as slices; `op` names the op in the errors.
pub(crate) fn f32_pair<'a>(
    op: &str,
    a: (&'a CpuStorage, &Layout),
    b: (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32])> {
    Ok((f32_slice(op, a)?, f32_slice(op, b)?))
}

/// One input's values as a slice.
pub(crate) fn f32_slice<'a>(op: &str, (s, l): (&'a CpuStorage, &Layout)) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op} takes f32 tensors")
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op} takes contiguous tensors")
    };
    Ok(&v[start..end])
}
