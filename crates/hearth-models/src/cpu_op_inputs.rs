//! The inputs of hearth's candle ops on the CPU (`gated_mul`, `rms_norm`, `rotary`):
//! each must be f32 and laid out contiguously, and is handed over as its slice.

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

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

/// `f` on `t`'s values, in place where `t` is a contiguous f32 tensor on the CPU (a
/// product's output, as the attention reads q, k and v: no copy of each a layer), on a
/// flattened f32 copy otherwise.
pub(crate) fn with_f32_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&v[start..end]));
        }
    }
    let copy = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&copy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// In place for a contiguous f32 tensor, from a flattened copy for a strided or f16
    /// one: the same values in the same (row-major) order either way.
    #[test]
    fn values_in_place_or_copied_agree() {
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let t = Tensor::from_vec(x.clone(), (3, 4), &Device::Cpu).expect("t");
        let in_place = with_f32_values(&t, |v| (v.as_ptr(), v.to_vec())).expect("values");
        assert_eq!(in_place.1, x);
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
            panic!("cpu f32");
        };
        let start = layout.start_offset();
        assert_eq!(in_place.0, v[start..].as_ptr(), "no copy");
        drop(storage);
        let tt = t.t().expect("transpose");
        let expect = tt
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec");
        assert_eq!(
            with_f32_values(&tt, |v| v.to_vec()).expect("strided"),
            expect
        );
        let half = t.to_dtype(DType::F16).expect("f16");
        assert!(with_f32_values(&half, |v| v.to_vec()).is_err());
    }
}
