//! The gated MLP's activation on the CPU, fused: `silu(gate) * up` in one pass over the
//! two products' outputs, 8 lanes at a time, split over the pool when the rows are many.
//! Candle's `silu` then `*` made two passes, a tensor between them, and called libm's
//! `expf` element by element on one thread: ~10% of the default model's 8-sequence
//! decode step. silu(x) = x / (1 + e^-x) = x / (1 + 2^(-x log2 e)), with `exp2`
//! (within 4e-7 of libm); the SIMD and portable paths give the same bits. Rounding
//! x log2 e adds ~4e-8 |x| of relative error where e^-x is large (x << 0). Below
//! x = -87, where e^-x leaves f32, `exp2` is clamped at 2^126, so silu(x) comes out as
//! x * 2^-126 (|x| * 1.2e-38) where libm's overflow gives 0.

use crate::exp2::exp2;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::f32::consts::LOG2_E;

/// Elements a pool task takes: a decode row of the default model (1536) stays whole,
/// an 8-row step splits in two.
const CHUNK: usize = 4096;

/// `silu(gate) * up`: fused on the CPU for f32 tensors of one shape, laid out
/// contiguously (what the products give); candle's two ops otherwise (other devices and
/// dtypes).
pub(crate) fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let fused = gate.device().is_cpu()
        && gate.dtype() == DType::F32
        && up.dtype() == DType::F32
        && gate.shape() == up.shape()
        && gate.is_contiguous()
        && up.is_contiguous();
    if fused {
        gate.apply_op2_no_bwd(up, &SiluMul)
    } else {
        gate.silu()? * up
    }
}

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "hearth-silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(u)) => (g, u),
            _ => candle_core::bail!("silu_mul takes f32 tensors"),
        };
        let (Some((g0, g1)), Some((u0, u1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("silu_mul takes contiguous tensors")
        };
        if l1.shape() != l2.shape() {
            candle_core::bail!("silu_mul shapes {:?} and {:?}", l1.shape(), l2.shape());
        }
        let (g, u) = (&g[g0..g1], &u[u0..u1]);
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(o, (g, u))| silu_mul_slices(g, u, o));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `out[i] = silu(g[i]) * u[i]` (slices of one length), 8 lanes at a time where the CPU
/// has AVX2 and FMA.
fn silu_mul_slices(g: &[f32], u: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features it is compiled for were just detected.
        return unsafe { silu_mul_avx2(g, u, out) };
    }
    silu_mul_portable(g, u, out)
}

fn silu_mul_portable(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(g).zip(u) {
        *o = x / (1.0 + exp2(-x * LOG2_E)) * y;
    }
}

/// `silu_mul_portable`'s operations in its order, 8 lanes at a time; the tail goes the
/// portable way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(g: &[f32], u: &[f32], out: &mut [f32]) {
    use crate::exp2::exp2_8;
    use std::arch::x86_64::*;
    let n = g.len().min(u.len()).min(out.len());
    let whole = n / 8 * 8;
    let (sign, log2e, one) = (
        _mm256_set1_ps(-0.0),
        _mm256_set1_ps(LOG2_E),
        _mm256_set1_ps(1.0),
    );
    for i in (0..whole).step_by(8) {
        // In bounds: i + 8 <= whole <= each length.
        let x = _mm256_loadu_ps(g.as_ptr().add(i));
        let y = _mm256_loadu_ps(u.as_ptr().add(i));
        let e = exp2_8(_mm256_mul_ps(_mm256_xor_ps(x, sign), log2e));
        let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(s, y));
    }
    silu_mul_portable(&g[whole..n], &u[whole..n], &mut out[whole..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Values across SiLU's range: both tails (where 2^x is clamped), around 0, signed
    /// zeros.
    fn gates(len: usize) -> Vec<f32> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut v = crate::test_data::xorshift_floats(&mut state, len);
        for (i, x) in v.iter_mut().enumerate() {
            *x *= [1.0, 8.0, 120.0, 1e4][i % 4];
        }
        v[..6].copy_from_slice(&[0.0, -0.0, 1e30, -1e30, 88.0, -88.0]);
        v
    }

    /// How far `silu(x) * y` may be from `want`, relative: the 2^x polynomial's 4e-7,
    /// a division and two roundings, and where e^-x is large, the rounding of x log2 e
    /// (~4e-8 |x|); below x = -87, the clamp's x * 2^-126.
    fn tolerance(x: f32, y: f32, want: f64) -> f64 {
        let (x, y) = (f64::from(x).abs(), f64::from(y).abs());
        (1e-6 + 1e-7 * x) * want.abs() + 1.2e-38 * x * y + 1e-37
    }

    /// Each element against silu(x) * y in f64.
    #[test]
    fn matches_f64_silu() {
        let g = gates(1003);
        let u: Vec<f32> = g.iter().rev().map(|x| x.sin() * 3.0).collect();
        let mut out = vec![f32::NAN; g.len()];
        silu_mul_slices(&g, &u, &mut out);
        for ((&x, &y), &got) in g.iter().zip(&u).zip(&out) {
            let (x64, y64) = (f64::from(x), f64::from(y));
            let want = x64 / (1.0 + (-x64).exp()) * y64;
            let tol = tolerance(x, y, want);
            assert!(
                (f64::from(got) - want).abs() <= tol,
                "silu({x}) * {y} = {got}, want {want}"
            );
        }
        assert_eq!((out[0], out[1]), (0.0, 0.0));
    }

    /// The 8-lane path gives the portable bits, tails of every length included.
    #[test]
    fn simd_gives_the_portable_bits() {
        let g = gates(4099);
        let u: Vec<f32> = g.iter().map(|x| x.cos()).collect();
        for len in [0, 1, 7, 8, 9, 4099] {
            let (mut a, mut b) = (vec![0f32; len], vec![1f32; len]);
            silu_mul_slices(&g[..len], &u[..len], &mut a);
            silu_mul_portable(&g[..len], &u[..len], &mut b);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "length {len}");
        }
    }

    /// Through candle: the fused op (split over several pool tasks here) agrees with
    /// candle's silu then multiply; what it does not take (a transposed tensor, f64,
    /// shapes apart) goes candle's way or fails as candle's multiply does.
    #[test]
    fn the_op_agrees_with_candle() -> Result<()> {
        let dev = Device::Cpu;
        let (rows, cols) = (7, 1543);
        let g = Tensor::from_vec(gates(rows * cols), (rows, cols), &dev)?;
        let u = (g.sin()? * 2.0)?;
        let want = (g.silu()? * &u)?.flatten_all()?.to_vec1::<f32>()?;
        let got = silu_mul(&g, &u)?;
        assert_eq!(got.dims(), &[rows, cols]);
        let (xs, ys) = (
            g.flatten_all()?.to_vec1::<f32>()?,
            u.flatten_all()?.to_vec1::<f32>()?,
        );
        let got = got.flatten_all()?.to_vec1::<f32>()?;
        for i in 0..want.len() {
            let (a, b) = (got[i], want[i]);
            let tol = 2.0 * tolerance(xs[i], ys[i], f64::from(b));
            assert!(f64::from((a - b).abs()) <= tol, "{a} vs {b}");
        }
        let (gt, ut) = (g.t()?, u.t()?);
        let want_t = (gt.silu()? * &ut)?.to_vec2::<f32>()?;
        assert_eq!(silu_mul(&gt, &ut)?.to_vec2::<f32>()?, want_t);
        let g64 = g.to_dtype(DType::F64)?;
        let u64 = u.to_dtype(DType::F64)?;
        assert_eq!(
            silu_mul(&g64, &u64)?.to_vec2::<f64>()?,
            (g64.silu()? * &u64)?.to_vec2::<f64>()?
        );
        assert!(silu_mul(&g, &u.narrow(1, 0, 5)?.contiguous()?).is_err());
        Ok(())
    }
}
