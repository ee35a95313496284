//! RMSNorm on the CPU: `x / sqrt(mean(x²) + eps) * w` over the last dimension. Candle's
//! summed each row's squares in one dependent chain of scalar adds (~3 cycles an
//! element: 3.4 µs for the default model's 8 decode rows, twice a layer); here 8 lanes
//! sum a row, so a row's cost is its loads. Each row is normalised on its own, in an
//! order fixed by its length alone: its result does not depend on the batch, and the
//! SIMD and portable paths give the same bits.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Rows from which the rows are split over the pool (a prefill's, not a decode step's:
/// a row takes ~0.1 µs).
const PAR_ROWS: usize = 32;

/// RMSNorm over `x`'s last dimension, weighted by `w` (that dimension's length): ours on
/// the CPU for contiguous f32 tensors, candle's otherwise.
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let ours = x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.is_contiguous()
        && w.is_contiguous()
        && w.rank() == 1
        && x.dims().last() == Some(&w.elem_count());
    if ours {
        x.apply_op2_no_bwd(w, &RmsNorm(eps))
    } else {
        candle_nn::ops::rms_norm(x, w, eps)
    }
}

/// `x + r` and its RMSNorm weighted by `w`, each row summed and normalised in one pass (a
/// layer's residual add and the norm after it: one op and one pass over the rows instead
/// of two): the same values as `(x + r)` then `rms_norm`, which it falls back to where
/// the tensors are not contiguous f32 ones on the CPU.
pub(crate) fn add_rms_norm(
    x: &Tensor,
    r: &Tensor,
    w: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    let fits = x.device().is_cpu()
        && x.dims() == r.dims()
        && w.rank() == 1
        && x.dims().last() == Some(&w.elem_count())
        && [x, r, w]
            .iter()
            .all(|t| t.dtype() == DType::F32 && t.is_contiguous());
    if !fits {
        let sum = (x + r)?;
        let normed = rms_norm(&sum, w, eps)?;
        return Ok((sum, normed));
    }
    let (sum, out) = {
        let ((xg, xl), (rg, rl), (wg, wl)) = (
            x.storage_and_layout(),
            r.storage_and_layout(),
            w.storage_and_layout(),
        );
        let (Storage::Cpu(xs), Storage::Cpu(rs), Storage::Cpu(ws)) = (&*xg, &*rg, &*wg) else {
            candle_core::bail!("add_rms_norm: tensors off the CPU");
        };
        let op = "add_rms_norm";
        let xs = crate::cpu_op_inputs::f32_slice(op, (xs, xl))?;
        let rs = crate::cpu_op_inputs::f32_slice(op, (rs, rl))?;
        let ws = crate::cpu_op_inputs::f32_slice(op, (ws, wl))?;
        let (mut sum, mut out) = (vec![0f32; xs.len()], vec![0f32; xs.len()]);
        add_rms_norm_into(xs, rs, ws, eps, (&mut sum, &mut out))?;
        (sum, out)
    };
    Ok((
        Tensor::from_vec(sum, x.shape(), x.device())?,
        Tensor::from_vec(out, x.shape(), x.device())?,
    ))
}

/// `add_rms_norm` over slices: each row of `w.len()` values of `x + r` into `sum`, and
/// its norm into `out` (all as long as `x`).
pub(crate) fn add_rms_norm_into(
    xs: &[f32],
    rs: &[f32],
    ws: &[f32],
    eps: f32,
    (sum, out): (&mut [f32], &mut [f32]),
) -> Result<()> {
    let n = ws.len();
    if n == 0 || !xs.len().is_multiple_of(n) || [rs.len(), sum.len(), out.len()] != [xs.len(); 3] {
        candle_core::bail!(
            "add_rms_norm: {}, {}, {} and {} values in rows of {n}",
            xs.len(),
            rs.len(),
            sum.len(),
            out.len()
        );
    }
    if xs.len() / n >= PAR_ROWS {
        sum.par_chunks_mut(n)
            .zip(out.par_chunks_mut(n))
            .zip(xs.par_chunks(n).zip(rs.par_chunks(n)))
            .for_each(|((s, o), (x, r))| add_norm_row(x, r, ws, eps, (s, o)));
    } else {
        sum.chunks_mut(n)
            .zip(out.chunks_mut(n))
            .zip(xs.chunks(n).zip(rs.chunks(n)))
            .for_each(|((s, o), (x, r))| add_norm_row(x, r, ws, eps, (s, o)));
    }
    Ok(())
}

/// One row of `add_rms_norm`: `s = x + r`, then `o` its norm.
fn add_norm_row(x: &[f32], r: &[f32], w: &[f32], eps: f32, (s, o): (&mut [f32], &mut [f32])) {
    for ((s, &x), &r) in s.iter_mut().zip(x).zip(r) {
        *s = x + r;
    }
    norm_row(s, w, eps, o);
}

struct RmsNorm(f32);

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "hearth-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = crate::cpu_op_inputs::f32_pair("rms_norm", (s1, l1), (s2, l2))?;
        let mut out = vec![0f32; x.len()];
        rms_norm_into(x, w, self.0, &mut out)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `rms_norm` over slices: each row of `w.len()` values of `x` into `out` (as long).
pub(crate) fn rms_norm_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let n = w.len();
    if n == 0 || !x.len().is_multiple_of(n) || out.len() != x.len() {
        candle_core::bail!(
            "rms_norm: {} values into {} in rows of {n}",
            x.len(),
            out.len()
        );
    }
    if x.len() / n >= PAR_ROWS {
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(o, x)| norm_row(x, w, eps, o));
    } else {
        out.chunks_mut(n)
            .zip(x.chunks(n))
            .for_each(|(o, x)| norm_row(x, w, eps, o));
    }
    Ok(())
}

/// One row, 8 lanes at a time where the CPU has AVX2 and FMA.
fn norm_row(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features it is compiled for were just detected.
        return unsafe { norm_row_avx2(x, w, eps, out) };
    }
    norm_row_portable(x, w, eps, out)
}

/// Lane `l` sums the squares of elements `8i + l` (fused multiply-adds), the lanes are
/// added pairwise (0+4, 1+5, ...; then 0+2, 1+3; then 0+1), then the tail past the last
/// whole 8 in order; the scale is `1 / sqrt(sum / n + eps)`, and `out = x * scale * w`.
fn norm_row_portable(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let whole = x.len() / 8 * 8;
    let mut lanes = [0f32; 8];
    for c in x[..whole].chunks_exact(8) {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = v.mul_add(v, *l);
        }
    }
    let scale = finish(reduce(lanes), &x[whole..], x.len(), eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * w;
    }
}

/// The lanes added as `norm_row_portable` says.
fn reduce(l: [f32; 8]) -> f32 {
    let h = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let q = [h[0] + h[2], h[1] + h[3]];
    q[0] + q[1]
}

/// The scale from the lanes' sum and the tail.
fn finish(mut sum: f32, tail: &[f32], n: usize, eps: f32) -> f32 {
    for &v in tail {
        sum = v.mul_add(v, sum);
    }
    1.0 / (sum / n as f32 + eps).sqrt()
}

/// `norm_row_portable`'s operations in its order, 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn norm_row_avx2(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len().min(w.len()).min(out.len());
    let whole = n / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    for i in (0..whole).step_by(8) {
        // In bounds: i + 8 <= whole <= n.
        let v = _mm256_loadu_ps(x.as_ptr().add(i));
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    let scale = finish(reduce(lanes), &x[whole..n], n, eps);
    let s = _mm256_set1_ps(scale);
    for i in (0..whole).step_by(8) {
        let v = _mm256_loadu_ps(x.as_ptr().add(i));
        let w = _mm256_loadu_ps(w.as_ptr().add(i));
        _mm256_storeu_ps(
            out.as_mut_ptr().add(i),
            _mm256_mul_ps(_mm256_mul_ps(v, s), w),
        );
    }
    for i in whole..n {
        out[i] = x[i] * scale * w[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rows(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut v = crate::test_data::xorshift_floats(&mut state, len);
        for (i, x) in v.iter_mut().enumerate() {
            *x *= [1.0, 30.0, 0.01, 300.0][i % 4];
        }
        v
    }

    /// `add_rms_norm` gives `x + r` and its `rms_norm` bit for bit: few rows and enough
    /// to be split over the pool, and a transposed input (candle's way).
    #[test]
    fn add_then_norm_in_one_pass_gives_the_same_bits() {
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("vec");
            v.iter().map(|x| x.to_bits()).collect()
        };
        for (m, n) in [(1usize, 576usize), (8, 13), (40, 64)] {
            let dev = Device::Cpu;
            let x = Tensor::from_vec(rows(m * n, 3), (m, n), &dev).expect("x");
            let r = Tensor::from_vec(rows(m * n, 4), (m, n), &dev).expect("r");
            let w = Tensor::from_vec(rows(n, 5), n, &dev).expect("w");
            let (sum, normed) = add_rms_norm(&x, &r, &w, 1e-6).expect("fused");
            let want_sum = (&x + &r).expect("add");
            let want = rms_norm(&want_sum, &w, 1e-6).expect("norm");
            assert_eq!(bits(&sum), bits(&want_sum), "sum {m}x{n}");
            assert_eq!(bits(&normed), bits(&want), "norm {m}x{n}");
            assert_eq!(normed.dims(), &[m, n]);
            if m == n {
                continue;
            }
            let (xt, rt) = (x.t().expect("t"), r.t().expect("t"));
            let w_t = Tensor::from_vec(rows(m, 6), m, &dev).expect("w");
            let (sum, normed) = add_rms_norm(&xt, &rt, &w_t, 1e-6).expect("transposed");
            let want_sum = (&xt + &rt).expect("add");
            assert_eq!(bits(&sum), bits(&want_sum));
            assert_eq!(
                bits(&normed),
                bits(&rms_norm(&want_sum, &w_t, 1e-6).expect("norm"))
            );
        }
        let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).expect("x");
        let w = Tensor::zeros(3, DType::F32, &Device::Cpu).expect("w");
        assert!(
            add_rms_norm(&x, &x, &w, 1e-6).is_err(),
            "rows of 4, weights of 3"
        );
    }

    /// Each row against RMSNorm in f64, at lengths with and without a tail, including
    /// an all-zero row (eps alone).
    #[test]
    fn matches_f64_reference() {
        for n in [1usize, 7, 8, 13, 64, 576, 1003] {
            let mut x = rows(5 * n, n as u64 + 1);
            x[..n].fill(0.0);
            let w = rows(n, 99);
            let eps = 1e-5;
            let t = Tensor::from_vec(x.clone(), (5, n), &Device::Cpu).expect("x");
            let wt = Tensor::from_vec(w.clone(), n, &Device::Cpu).expect("w");
            let got = rms_norm(&t, &wt, eps)
                .expect("norm")
                .to_vec2::<f32>()
                .expect("vec");
            for (r, row) in x.chunks(n).enumerate() {
                let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64;
                let scale = 1.0 / (ms + f64::from(eps)).sqrt();
                for (i, (&v, &w)) in row.iter().zip(&w).enumerate() {
                    let want = f64::from(v) * scale * f64::from(w);
                    let diff = (f64::from(got[r][i]) - want).abs();
                    assert!(
                        diff <= 1e-5 * want.abs() + 1e-30,
                        "n {n} row {r} [{i}]: {} vs {want}",
                        got[r][i]
                    );
                }
            }
        }
    }

    /// The SIMD path gives the portable path's bits, and a row alone gives the bits it
    /// gives in a batch (the batch over the pool's split too).
    #[test]
    fn paths_and_batches_agree_bit_for_bit() {
        for n in [13usize, 64, 576] {
            let rows_n = PAR_ROWS + 3;
            let x = rows(rows_n * n, 7 * n as u64);
            let w = rows(n, 5);
            let t = Tensor::from_vec(x.clone(), (rows_n, n), &Device::Cpu).expect("x");
            let wt = Tensor::from_vec(w.clone(), n, &Device::Cpu).expect("w");
            let batch = rms_norm(&t, &wt, 1e-6)
                .expect("norm")
                .to_vec2::<f32>()
                .expect("v");
            for (r, row) in x.chunks(n).enumerate() {
                let mut portable = vec![0f32; n];
                norm_row_portable(row, &w, 1e-6, &mut portable);
                let alone = Tensor::from_vec(row.to_vec(), (1, n), &Device::Cpu).expect("row");
                let alone = rms_norm(&alone, &wt, 1e-6).expect("norm").to_vec2::<f32>();
                let alone = alone.expect("v").remove(0);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&batch[r]), bits(&portable), "n {n} row {r}: SIMD");
                assert_eq!(bits(&batch[r]), bits(&alone), "n {n} row {r}: alone");
            }
        }
    }

    /// Other dtypes go to candle's RmsNorm.
    #[test]
    fn falls_back_to_candle() {
        let x = Tensor::from_vec(rows(24, 3), (4, 6), &Device::Cpu).expect("x");
        let x = x.to_dtype(DType::F16).expect("f16");
        let w = Tensor::from_vec(rows(6, 4), 6, &Device::Cpu).expect("w");
        let w = w.to_dtype(DType::F16).expect("f16");
        let got = rms_norm(&x, &w, 1e-6).expect("norm");
        let want = candle_nn::ops::rms_norm(&x, &w, 1e-6).expect("candle");
        assert_eq!(got.dtype(), DType::F16);
        let (got, want) = (got.to_vec2::<half::f16>(), want.to_vec2::<half::f16>());
        assert_eq!(got.expect("got"), want.expect("want"));
    }
}
