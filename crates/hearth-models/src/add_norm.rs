//! A residual add and the RMSNorm after it, fused on the CPU: `s = x + y` and
//! `rms_norm(s, w)` come out of one call, for f32 rows laid out contiguously. Candle
//! did them as two ops, each a tensor, and its RMSNorm (serial under 33 rows) summed a
//! row's squares as one chain of dependent adds. Here the rows of a group of 8 are
//! summed side by side, 8 independent chains, each in candle's order, and the element
//! passes vectorise; so both outputs keep candle's bits (tests compare them bit for bit).
//! Many rows (a prefill) are split over the pool.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_nn::ops::rms_norm;
use rayon::prelude::*;

/// Rows whose squares are summed side by side.
const GROUP: usize = 8;

/// Rows a pool task takes: decode steps (a few rows) stay on one thread.
const ROWS_PER_TASK: usize = 32;

/// `(x + y, rms_norm(x + y, w, eps))`: fused on the CPU for f32 `[rows, h]` tensors laid
/// out contiguously and an f32 `w` of `h`; candle's two ops otherwise (other devices,
/// dtypes or layouts).
pub(crate) fn add_rms_norm(
    x: &Tensor,
    y: &Tensor,
    w: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    let fused = x.device().is_cpu()
        && [x, y, w]
            .iter()
            .all(|t| t.dtype() == DType::F32 && t.is_contiguous())
        && x.shape() == y.shape()
        && x.rank() == 2
        && w.dims() == [x.dim(1)?];
    if !fused {
        let s = (x + y)?;
        let n = rms_norm(&s, w, eps)?;
        return Ok((s, n));
    }
    let both = x.apply_op3_no_bwd(y, w, &AddNorm { eps })?;
    Ok((both.get(0)?, both.get(1)?))
}

struct AddNorm {
    eps: f32,
}

/// The f32 slice a contiguous layout covers.
fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("add_rms_norm takes f32 tensors")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("add_rms_norm takes contiguous tensors")
    };
    Ok(&v[a..b])
}

impl CustomOp3 for AddNorm {
    fn name(&self) -> &'static str {
        "hearth-add-rms-norm"
    }

    /// Output `[2, rows, h]`: the sums, then the normalised rows.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, y, w) = (
            contiguous(s1, l1)?,
            contiguous(s2, l2)?,
            contiguous(s3, l3)?,
        );
        let h = w.len();
        if h == 0 || x.len() != y.len() || x.len() % h != 0 {
            candle_core::bail!(
                "add_rms_norm: {} and {} values in rows of {h}",
                x.len(),
                y.len()
            );
        }
        let rows = x.len() / h;
        let mut out = vec![0f32; 2 * x.len()];
        let (sums, normed) = out.split_at_mut(x.len());
        let per = ROWS_PER_TASK * h;
        sums.par_chunks_mut(per)
            .zip(normed.par_chunks_mut(per))
            .zip(x.par_chunks(per).zip(y.par_chunks(per)))
            .for_each(|((s, n), (x, y))| add_norm_rows(x, y, w, self.eps, s, n));
        Ok((CpuStorage::F32(out), Shape::from((2, rows, h))))
    }
}

/// `s = x + y` and `n = rms_norm(s)` for whole rows of `w.len()`, with candle's
/// operations in candle's order: a row's sum of squares from 0 in column order,
/// `m = sqrt(sum / h + eps)`, `n = s / m * w`.
fn add_norm_rows(x: &[f32], y: &[f32], w: &[f32], eps: f32, s: &mut [f32], n: &mut [f32]) {
    let h = w.len();
    for ((s, x), y) in s.iter_mut().zip(x).zip(y) {
        *s = x + y;
    }
    for (sg, ng) in s.chunks(GROUP * h).zip(n.chunks_mut(GROUP * h)) {
        let rows = sg.len() / h;
        let mut sum2 = [0f32; GROUP];
        for j in 0..h {
            for r in 0..rows {
                let v = sg[r * h + j];
                sum2[r] += v * v;
            }
        }
        for r in 0..rows {
            let m = (sum2[r] / h as f32 + eps).sqrt();
            let (sr, nr) = (&sg[r * h..(r + 1) * h], &mut ng[r * h..(r + 1) * h]);
            for ((d, v), a) in nr.iter_mut().zip(sr).zip(w) {
                *d = *v / m * *a;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed * 0x9E37_79B9_7F4A_7C15 | 1;
        crate::test_data::xorshift_floats(&mut state, len)
    }

    /// Both outputs equal candle's `x + y` and `rms_norm` bit for bit, for row counts
    /// around the group and task sizes (so partial groups and several pool tasks).
    #[test]
    fn gives_candles_bits() -> Result<()> {
        let dev = Device::Cpu;
        for (rows, h) in [(1, 576), (3, 64), (8, 576), (9, 100), (70, 96)] {
            let x = Tensor::from_vec(data(rows * h, 1), (rows, h), &dev)?;
            let y = (Tensor::from_vec(data(rows * h, 2), (rows, h), &dev)? * 3.0)?;
            let w = Tensor::from_vec(data(h, 3), h, &dev)?;
            let (s, n) = add_rms_norm(&x, &y, &w, 1e-5)?;
            let want_s = (&x + &y)?;
            let want_n = rms_norm(&want_s, &w, 1e-5)?;
            let bits = |t: &Tensor| -> Result<Vec<u32>> {
                Ok(t.flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .map(|v| v.to_bits())
                    .collect())
            };
            assert_eq!(s.dims(), &[rows, h]);
            assert_eq!(bits(&s)?, bits(&want_s)?, "sums, {rows} x {h}");
            assert_eq!(bits(&n)?, bits(&want_n)?, "norms, {rows} x {h}");
        }
        Ok(())
    }

    /// What the op does not take goes candle's way: f16 tensors, and a transposed `x`.
    #[test]
    fn falls_back_to_candle() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(data(48, 4), (6, 8), &dev)?;
        let y = Tensor::from_vec(data(48, 5), (6, 8), &dev)?;
        let w = Tensor::from_vec(data(8, 6), 8, &dev)?;
        let half = |t: &Tensor| t.to_dtype(DType::F16);
        let (s, n) = add_rms_norm(&half(&x)?, &half(&y)?, &half(&w)?, 1e-6)?;
        let want = (half(&x)? + half(&y)?)?;
        let f32s = |t: &Tensor| t.to_dtype(DType::F32)?.to_vec2::<f32>();
        assert_eq!(f32s(&s)?, f32s(&want)?);
        assert_eq!(f32s(&n)?, f32s(&rms_norm(&want, &half(&w)?, 1e-6)?)?);
        let xt = Tensor::from_vec(data(48, 7), (8, 6), &dev)?.t()?;
        let (s, n) = add_rms_norm(&xt, &y, &w, 1e-6)?;
        let want = (&xt + &y)?;
        assert_eq!(s.to_vec2::<f32>()?, want.to_vec2::<f32>()?);
        assert_eq!(
            n.to_vec2::<f32>()?,
            rms_norm(&want, &w, 1e-6)?.to_vec2::<f32>()?
        );
        Ok(())
    }
}
