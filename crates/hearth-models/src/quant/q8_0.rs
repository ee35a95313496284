//! Q8_0 weights (ggml block_q8_0: f16 d + 32 i8, value = d * q) and their matmul
//! `y = x · Wᵀ` against activations quantized per row to Q8_0, as ggml does for its
//! Q8_0 x Q8_0 dot product. Used for tied LM heads (token_embd is Q8_0).

use super::dot_q8_0;
use super::kernel::Kernel;
use super::q8_1::QK;
use super::tiled::{check_shapes, matmul_rows, quantize_rows};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};
use half::f16;

/// ggml block_q8_0: f16 d, 32 i8.
pub const Q8_0_BLOCK_BYTES: usize = 34;

/// One activation block; `d` is the f16-rounded scale ggml stores, widened once.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(4))]
pub struct BlockQ8_0 {
    pub d: f32,
    pub qs: [i8; QK],
}

impl BlockQ8_0 {
    pub const ZERO: BlockQ8_0 = BlockQ8_0 {
        d: 0.0,
        qs: [0; QK],
    };
}

/// ggml's quantize_row_q8_0: `x` (a multiple of 32 long) into `x.len() / 32` blocks.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    #[cfg(target_arch = "x86_64")]
    if Kernel::Avx2.is_available() {
        // SAFETY: the CPU has the features.
        unsafe { quantize_avx2(x, out) };
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
        let (d, _) = unsafe { super::simd::quantize_block(xs.as_ptr(), b.qs.as_mut_ptr()) };
        b.d = f16::from_f32(d).to_f32();
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
        b.d = f16::from_f32(d).to_f32();
    }
}

/// `n` rows of `k` weights each, stored as ggml's raw Q8_0 blocks.
#[derive(Debug, Clone)]
pub struct Q8_0Matrix {
    n: usize,
    k: usize,
    data: Vec<u8>,
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
        Ok(Q8_0Matrix { n, k, data })
    }

    /// Copies the blocks of a `[n, k]` Q8_0 `QTensor`.
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

    /// `y[m, n] = x[m, k] · Wᵀ` with the fastest kernel this CPU has (AVX2: see
    /// `Kernel::Vnni`).
    pub fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_with(Kernel::Avx2.effective(), x, m, y)
    }

    /// As `matmul`, with a chosen kernel (it falls back where unavailable).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        let (n, k, kb) = (self.n, self.k, self.k / QK);
        if !check_shapes("Q8_0", x, y, m, k, n)? {
            return Ok(());
        }
        let acts = quantize_rows(x, m, k, kb, BlockQ8_0::ZERO, quantize_row_q8_0);
        let groups = dot_q8_0::group_scales(&acts, m, kb);
        let row_bytes = kb * Q8_0_BLOCK_BYTES;
        matmul_rows(&self.data, row_bytes, &acts, kb, m, y, |w, r0, a, out| {
            let g = &groups[(r0 / 4 * kb * 4).min(groups.len())..];
            dot_q8_0::dot_rows(kernel, w, a, g, out)
        });
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

    fn row(&self, i: usize, out: &mut [f32]) {
        let row_bytes = self.k / QK * Q8_0_BLOCK_BYTES;
        let row = &self.data[i * row_bytes..(i + 1) * row_bytes];
        for (b, o) in row
            .chunks_exact(Q8_0_BLOCK_BYTES)
            .zip(out.chunks_exact_mut(QK))
        {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            for (o, &q) in o.iter_mut().zip(&b[2..]) {
                *o = d * f32::from(q as i8);
            }
        }
    }
}
