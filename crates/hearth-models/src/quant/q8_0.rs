//! Q8_0 weights (ggml block_q8_0: f16 d + 32 i8, value = d * q) and their matmul
//! `y = x · Wᵀ` against activations quantized per row to Q8_0, as ggml does for its
//! Q8_0 x Q8_0 dot product. Used for tied LM heads (token_embd is Q8_0).

use super::dot_q8_0::{dot_pair, dot_unit, Q8_0X8};
use super::kernel::Kernel;
use super::pairs;
use super::q8_1::QK;
use super::shared_acts::{checked, ActsKind, QuantizedRows};
use super::units::{repack, ROWS};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};
use half::f16;

/// ggml block_q8_0: f16 d, 32 i8.
pub const Q8_0_BLOCK_BYTES: usize = 34;

/// One activation block; `d` is the f16-rounded scale ggml stores, widened once, and
/// `sum` the sum of `qs` (the kernels' offset correction).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(4))]
pub struct BlockQ8_0 {
    pub d: f32,
    pub sum: i32,
    pub qs: [i8; QK],
}

impl BlockQ8_0 {
    pub const ZERO: BlockQ8_0 = BlockQ8_0 {
        d: 0.0,
        sum: 0,
        qs: [0; QK],
    };
}

/// ggml's quantize_row_q8_0: `x` (a multiple of 32 long) into `x.len() / 32` blocks.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    #[cfg(target_arch = "x86_64")]
    if Kernel::Avx2.is_available() {
        // SAFETY: the CPU has the features.
        if std::arch::is_x86_feature_detected!("avx512f") {
            unsafe { quantize_avx512(x, out) };
        } else {
            unsafe { quantize_avx2(x, out) };
        }
        return;
    }
    quantize(x, out)
}

/// `quantize` with the per-block work in AVX2 (`simd::quantize_block`): same bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        // SAFETY: 32 floats in, 32 bytes out.
        let (d, sum) = unsafe { super::simd::quantize_block(xs.as_ptr(), b.qs.as_mut_ptr()) };
        b.d = super::simd::round_to_f16(d);
        b.sum = sum;
    }
}

/// `quantize` with the per-block work on 16-lane vectors (`simd::quantize_block_512`):
/// same bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn quantize_avx512(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        // SAFETY: 32 floats in, 32 bytes out.
        let (d, sum) = unsafe { super::simd::quantize_block_512(xs.as_ptr(), b.qs.as_mut_ptr()) };
        b.d = super::simd::round_to_f16(d);
        b.sum = sum;
    }
}

fn quantize(x: &[f32], out: &mut [BlockQ8_0]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
        }
        b.sum = b.qs.iter().map(|&q| q as i32).sum();
        b.d = f16::from_f32(d).to_f32();
    }
}

/// `n` rows of `k` weights each, repacked on load into units of 8 interleaved rows.
#[derive(Debug, Clone)]
pub struct Q8_0Matrix {
    n: usize,
    k: usize,
    /// `[unit][block]`: `n.div_ceil(8)` units of `k / 32` blocks each (rows past `n`
    /// are zeros).
    units: Vec<Q8_0X8>,
}

impl Q8_0Matrix {
    /// From raw ggml bytes, row-major: `n * k / 32` blocks of 34 bytes.
    pub fn from_bytes(n: usize, k: usize, data: Vec<u8>) -> Result<Self> {
        if !k.is_multiple_of(QK) {
            bail!("Q8_0 row length {k} is not a multiple of {QK}");
        }
        let want = n * (k / QK) * Q8_0_BLOCK_BYTES;
        if data.len() != want {
            bail!("Q8_0 {n}x{k} needs {want} bytes, got {}", data.len());
        }
        let kb = k / QK;
        let units = repack(n, kb, Q8_0_BLOCK_BYTES, &data, Q8_0X8::ZERO, |u, r, blk| {
            u.set_row(r, blk)
        });
        Ok(Q8_0Matrix { n, k, units })
    }

    /// Repacks the blocks of a `[n, k]` Q8_0 `QTensor`.
    pub fn from_qtensor(t: &QTensor) -> Result<Self> {
        if t.dtype() != GgmlDType::Q8_0 {
            bail!("expected a Q8_0 tensor, got {:?}", t.dtype());
        }
        let (n, k) = t.shape().dims2()?;
        Self::from_bytes(n, k, t.data()?.into_owned())
    }

    /// Output features (weight rows).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `y[m, n] = x[m, k] · Wᵀ` with the fastest kernel this CPU has.
    pub fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_with(Kernel::detect(), x, m, y)
    }

    /// As `matmul`, with a chosen kernel (it falls back where unavailable).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        let acts = super::RowMatrix::quantize(self, x, m)?;
        self.product(kernel, &acts, m, y)
    }

    /// `y[m, n]` from `m` quantized rows, with `kernel`.
    fn product(&self, kernel: Kernel, acts: &QuantizedRows, m: usize, y: &mut [f32]) -> Result<()> {
        let kb = self.k / QK;
        let a = checked::Q8_0("Q8_0", acts, (m, kb, self.n), y)?;
        pairs::matmul(
            kernel,
            &self.units,
            kb,
            self.n,
            a,
            m,
            y,
            (dot_unit, dot_pair),
        );
        Ok(())
    }
}

impl super::RowMatrix for Q8_0Matrix {
    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q8_0
    }

    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        Q8_0Matrix::matmul(self, x, m, y)
    }

    fn acts_kind(&self) -> Option<ActsKind> {
        Some(ActsKind::Q8_0)
    }

    fn quantize_into(&self, x: &[f32], m: usize, acts: &mut QuantizedRows) -> Result<()> {
        let q8_0 = (BlockQ8_0::ZERO, quantize_row_q8_0);
        pairs::quantize_checked("Q8_0", x, (m, self.k, QK), q8_0, acts.q8_0_mut())
    }

    fn matmul_quantized(&self, acts: &QuantizedRows, m: usize, y: &mut [f32]) -> Result<()> {
        self.product(Kernel::detect(), acts, m, y)
    }

    fn row(&self, i: usize, out: &mut [f32]) {
        let kb = self.k / QK;
        let (g, r) = (i / ROWS, i % ROWS);
        for (u, o) in self.units[g * kb..(g + 1) * kb]
            .iter()
            .zip(out.chunks_exact_mut(QK))
        {
            let d = u.d(r);
            for (e, o) in o.iter_mut().enumerate() {
                *o = d * f32::from(u.q(r, e));
            }
        }
    }
}
