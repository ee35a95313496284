//! The gated MLP's activation on the CPU, fused: `act(gate) * up` in one pass over the
//! two products' outputs, 8 lanes at a time, split over the pool when the rows are many.
//! Candle's activation then `*` made two passes, a tensor between them, and called
//! libm's `expf` (or `tanhf`) element by element on one thread: the largest serial part
//! of the default model's 8-sequence decode step (7% of the stepping thread's samples).
//! Both activations are x / (1 + 2^t):
//! - SiLU: x / (1 + e^-x), t = -x log2 e.
//! - GELU, tanh form: x/2 (1 + tanh(u)) = x / (1 + e^-2u), u = sqrt(2/pi) (x + 0.044715
//!   x^3), so t = -2 log2 e sqrt(2/pi) x (1 + 0.044715 x^2).
//!
//! 2^t is `exp2` (within 4e-7 of libm); rounding t adds ~4e-8 |t| of relative error
//! where 2^t is large. Past t = 126 (x < -87 for SiLU, x < -10 for GELU), `exp2` is
//! clamped, so the result is x * 2^-126 (|x| * 1.2e-38) where libm's gives ~0. The SIMD
//! and portable paths give the same bits.

use crate::exp2::exp2;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::f32::consts::LOG2_E;

/// Elements a pool task takes, past `SERIAL_MAX` (a prefill's rows): a row of the
/// default model (1536) stays whole.
const CHUNK: usize = 4096;

/// Values up to which one thread does them all: a decode step's 8 rows x 1536 (~4 µs)
/// split three ways over the pool cost the 8-sequence step 1.6-1.9% more than on one
/// thread (4 sequences 2.2%; 16 and 32 alike either way), the workers' hand-offs more
/// than the work.
const SERIAL_MAX: usize = 32 * 1024;

/// GELU's cubic coefficient, and t's factor: -2 log2(e) sqrt(2/pi).
const GELU_CUBIC: f32 = 0.044715;
const GELU_T: f32 = -2.0 * LOG2_E * 0.797_884_6;

/// The activation applied to the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Silu,
    /// GELU in its tanh form (`gelu_pytorch_tanh`, candle's `gelu`).
    GeluTanh,
}

impl Gate {
    /// t, with act(x) = x / (1 + 2^t).
    #[inline(always)]
    fn exponent(self, x: f32) -> f32 {
        match self {
            Gate::Silu => -x * LOG2_E,
            Gate::GeluTanh => x * (x * x).mul_add(GELU_CUBIC, 1.0) * GELU_T,
        }
    }
}

/// `act(gate) * up`: fused on the CPU for f32 tensors of one shape, laid out
/// contiguously (what the products give); candle's two ops otherwise (other devices and
/// dtypes).
pub(crate) fn gated_mul(act: Gate, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let fused = gate.device().is_cpu()
        && gate.dtype() == DType::F32
        && up.dtype() == DType::F32
        && gate.shape() == up.shape()
        && gate.is_contiguous()
        && up.is_contiguous();
    if fused {
        gate.apply_op2_no_bwd(up, &GatedMul(act))
    } else {
        let a = match act {
            Gate::Silu => gate.silu()?,
            Gate::GeluTanh => gate.gelu()?,
        };
        a * up
    }
}

struct GatedMul(Gate);

impl CustomOp2 for GatedMul {
    fn name(&self) -> &'static str {
        "hearth-gated-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = crate::cpu_op_inputs::f32_pair("gated_mul", (s1, l1), (s2, l2))?;
        if l1.shape() != l2.shape() {
            candle_core::bail!("gated_mul shapes {:?} and {:?}", l1.shape(), l2.shape());
        }
        let mut out = vec![0f32; g.len()];
        gated_mul_into(self.0, g, u, &mut out)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `gated_mul` over slices of one length: `out[i] = act(g[i]) * u[i]`.
pub(crate) fn gated_mul_into(act: Gate, g: &[f32], u: &[f32], out: &mut [f32]) -> Result<()> {
    if u.len() != g.len() || out.len() != g.len() {
        candle_core::bail!(
            "gated_mul: {}, {} and {} values",
            g.len(),
            u.len(),
            out.len()
        );
    }
    if g.len() <= SERIAL_MAX {
        gated_slices(act, g, u, out);
        return Ok(());
    }
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| gated_slices(act, g, u, o));
    Ok(())
}

/// `out[i] = act(g[i]) * u[i]` (slices of one length), 16 lanes at a time where the CPU
/// has AVX-512 (an 8-sequence decode step 0.8-1.4% faster than on 8 lanes, alternated
/// step by step), 8 where it has AVX2 and FMA.
fn gated_slices(act: Gate, g: &[f32], u: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the features it is compiled for were just detected.
        return unsafe { gated_avx512(act, g, u, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features it is compiled for were just detected.
        return unsafe { gated_avx2(act, g, u, out) };
    }
    gated_portable(act, g, u, out)
}

fn gated_portable(act: Gate, g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(g).zip(u) {
        *o = x / (1.0 + exp2(act.exponent(x))) * y;
    }
}

/// `gated_portable`'s operations in its order, 8 lanes at a time; the tail goes the
/// portable way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gated_avx2(act: Gate, g: &[f32], u: &[f32], out: &mut [f32]) {
    use crate::exp2::exp2_8;
    use std::arch::x86_64::*;
    let n = g.len().min(u.len()).min(out.len());
    let whole = n / 8 * 8;
    let one = _mm256_set1_ps(1.0);
    let exponent = |x: __m256| match act {
        Gate::Silu => _mm256_mul_ps(
            _mm256_xor_ps(x, _mm256_set1_ps(-0.0)),
            _mm256_set1_ps(LOG2_E),
        ),
        Gate::GeluTanh => {
            let inner = _mm256_fmadd_ps(_mm256_mul_ps(x, x), _mm256_set1_ps(GELU_CUBIC), one);
            _mm256_mul_ps(_mm256_mul_ps(x, inner), _mm256_set1_ps(GELU_T))
        }
    };
    for i in (0..whole).step_by(8) {
        // In bounds: i + 8 <= whole <= each length.
        let x = _mm256_loadu_ps(g.as_ptr().add(i));
        let y = _mm256_loadu_ps(u.as_ptr().add(i));
        let s = _mm256_div_ps(x, _mm256_add_ps(one, exp2_8(exponent(x))));
        _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(s, y));
    }
    gated_portable(act, &g[whole..n], &u[whole..n], &mut out[whole..n]);
}

/// `gated_portable`'s operations in its order, 16 lanes at a time; the rest as
/// `gated_avx2` does it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gated_avx512(act: Gate, g: &[f32], u: &[f32], out: &mut [f32]) {
    use crate::exp2::exp2_16;
    use std::arch::x86_64::*;
    let n = g.len().min(u.len()).min(out.len());
    let whole = n / 16 * 16;
    let one = _mm512_set1_ps(1.0);
    let exponent = |x: __m512| match act {
        Gate::Silu => _mm512_mul_ps(
            _mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(x),
                _mm512_set1_epi32(i32::MIN),
            )),
            _mm512_set1_ps(LOG2_E),
        ),
        Gate::GeluTanh => {
            let inner = _mm512_fmadd_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(GELU_CUBIC), one);
            _mm512_mul_ps(_mm512_mul_ps(x, inner), _mm512_set1_ps(GELU_T))
        }
    };
    for i in (0..whole).step_by(16) {
        // In bounds: i + 16 <= whole <= each length.
        let x = _mm512_loadu_ps(g.as_ptr().add(i));
        let y = _mm512_loadu_ps(u.as_ptr().add(i));
        let s = _mm512_div_ps(x, _mm512_add_ps(one, exp2_16(exponent(x))));
        _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_mul_ps(s, y));
    }
    gated_avx2(act, &g[whole..n], &u[whole..n], &mut out[whole..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const GATES: [Gate; 2] = [Gate::Silu, Gate::GeluTanh];

    /// Values across the activations' range: both tails (where 2^t is clamped), around
    /// 0, signed zeros.
    fn gates(len: usize) -> Vec<f32> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut v = crate::test_data::xorshift_floats(&mut state, len);
        for (i, x) in v.iter_mut().enumerate() {
            *x *= [1.0, 8.0, 120.0, 1e4][i % 4];
        }
        v[..6].copy_from_slice(&[0.0, -0.0, 1e30, -1e30, 88.0, -88.0]);
        v
    }

    /// act(x) * y and t in f64.
    fn reference(act: Gate, x: f32, y: f32) -> (f64, f64) {
        let (x, y) = (f64::from(x), f64::from(y));
        match act {
            Gate::Silu => (x / (1.0 + (-x).exp()) * y, x * std::f64::consts::LOG2_E),
            Gate::GeluTanh => {
                // x/2 (1 + tanh u) as x / (1 + e^-2u): 1 + tanh u cancels for u << 0.
                let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                (
                    x / (1.0 + (-2.0 * u).exp()) * y,
                    2.0 * u * std::f64::consts::LOG2_E,
                )
            }
        }
    }

    /// How far `act(x) * y` may be from `want`, relative: the 2^t polynomial's 4e-7, a
    /// division and two roundings, and the rounding of t (~4e-8 |t|); past the clamp,
    /// x * 2^-126.
    fn tolerance(x: f32, y: f32, want: f64, t: f64) -> f64 {
        let (x, y) = (f64::from(x).abs(), f64::from(y).abs());
        let t = if t.is_finite() { t.abs() } else { 1e300 };
        (1e-6 + 1e-7 * t.min(1e30)) * want.abs() + 1.2e-38 * x * y + 1e-37
    }

    /// Each element against the activation in f64.
    #[test]
    fn matches_f64_reference() {
        let g = gates(1003);
        let u: Vec<f32> = g.iter().rev().map(|x| x.sin() * 3.0).collect();
        for act in GATES {
            let mut out = vec![f32::NAN; g.len()];
            gated_slices(act, &g, &u, &mut out);
            for ((&x, &y), &got) in g.iter().zip(&u).zip(&out) {
                let (want, t) = reference(act, x, y);
                let tol = tolerance(x, y, want, t);
                assert!(
                    (f64::from(got) - want).abs() <= tol,
                    "{act:?}({x}) * {y} = {got}, want {want}"
                );
            }
            assert_eq!((out[0], out[1]), (0.0, 0.0));
        }
    }

    /// The 16- and 8-lane paths give the portable bits, tails of every length included.
    #[test]
    fn simd_gives_the_portable_bits() {
        let g = gates(4099);
        let u: Vec<f32> = g.iter().map(|x| x.cos()).collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for act in GATES {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 4099] {
                let (mut a, mut b) = (vec![0f32; len], vec![1f32; len]);
                gated_slices(act, &g[..len], &u[..len], &mut a);
                gated_portable(act, &g[..len], &u[..len], &mut b);
                assert_eq!(bits(&a), bits(&b), "{act:?}, length {len}");
            }
        }
    }

    /// Through candle: the fused op (split over pool tasks here) agrees with
    /// candle's activation then multiply; what it does not take (a transposed tensor,
    /// f64) goes candle's way, and shapes apart fail as candle's multiply does.
    #[test]
    fn the_op_agrees_with_candle() -> Result<()> {
        let dev = Device::Cpu;
        // Past SERIAL_MAX, so the pool's split is what is checked.
        let (rows, cols) = (29, 1543);
        let g = Tensor::from_vec(gates(rows * cols), (rows, cols), &dev)?;
        let u = (g.sin()? * 2.0)?;
        let xs = g.flatten_all()?.to_vec1::<f32>()?;
        let ys = u.flatten_all()?.to_vec1::<f32>()?;
        for act in GATES {
            let candle = |g: &Tensor| match act {
                Gate::Silu => g.silu(),
                Gate::GeluTanh => g.gelu(),
            };
            let want = (candle(&g)? * &u)?.flatten_all()?.to_vec1::<f32>()?;
            let got = gated_mul(act, &g, &u)?;
            assert_eq!(got.dims(), &[rows, cols]);
            let got = got.flatten_all()?.to_vec1::<f32>()?;
            for i in 0..want.len() {
                let (a, b) = (got[i], want[i]);
                let (exact, t) = reference(act, xs[i], ys[i]);
                // candle's own rounding comes on top; its GELU's 1 + tanh(u) in f32
                // keeps nothing below f32's epsilon (~6e-8 of x y) where u << 0.
                let candle_gelu = match act {
                    Gate::Silu => 0.0,
                    Gate::GeluTanh => 6e-8 * f64::from(xs[i] * ys[i]).abs(),
                };
                let tol = 2.0 * tolerance(xs[i], ys[i], exact, t) + candle_gelu;
                assert!(f64::from((a - b).abs()) <= tol, "{act:?}: {a} vs {b}");
            }
            let (gt, ut) = (g.t()?, u.t()?);
            let want_t = (candle(&gt)? * &ut)?.to_vec2::<f32>()?;
            assert_eq!(gated_mul(act, &gt, &ut)?.to_vec2::<f32>()?, want_t);
            let g64 = g.to_dtype(DType::F64)?;
            let u64 = u.to_dtype(DType::F64)?;
            assert_eq!(
                gated_mul(act, &g64, &u64)?.to_vec2::<f64>()?,
                (candle(&g64)? * &u64)?.to_vec2::<f64>()?
            );
            assert!(gated_mul(act, &g, &u.narrow(1, 0, 5)?.contiguous()?).is_err());
        }
        Ok(())
    }

    /// Up to `SERIAL_MAX` values one thread does them all, with the same bits as the
    /// pool's split of the same rows.
    #[test]
    fn one_thread_and_the_pool_agree() -> Result<()> {
        let dev = Device::Cpu;
        let cols = 1543;
        let big = SERIAL_MAX / cols + 3;
        let g = Tensor::from_vec(gates(big * cols), (big, cols), &dev)?;
        let u = (g.cos()? * 3.0)?;
        for act in GATES {
            let all = gated_mul(act, &g, &u)?.to_vec2::<f32>()?;
            let few = gated_mul(act, &g.narrow(0, 0, 8)?, &u.narrow(0, 0, 8)?)?;
            assert_eq!(few.to_vec2::<f32>()?, all[..8].to_vec(), "{act:?}");
        }
        Ok(())
    }
}
