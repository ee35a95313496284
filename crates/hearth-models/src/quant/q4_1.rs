//! A Q4_1 weight matrix in ggml's block layout and its matmul `y = x · Wᵀ` (see
//! `tiled` for how the work is split).

use super::dot;
use super::kernel::Kernel;
use super::q8_1::{quantize_row_q8_1, BlockQ8_1, QK};
use super::tiled::{check_shapes, matmul_rows, quantize_rows};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};
use half::f16;

/// ggml block_q4_1: f16 d, f16 m, 16 bytes of nibbles; value = d * q + m.
pub const Q4_1_BLOCK_BYTES: usize = 20;

/// `n` rows of `k` weights each, stored as ggml's raw Q4_1 blocks.
#[derive(Debug, Clone)]
pub struct Q4_1Matrix {
    n: usize,
    k: usize,
    data: Vec<u8>,
}

impl Q4_1Matrix {
    /// From raw ggml bytes, row-major: `n * k / 32` blocks of 20 bytes.
    pub fn from_bytes(n: usize, k: usize, data: Vec<u8>) -> Result<Self> {
        if !k.is_multiple_of(QK) {
            bail!("Q4_1 row length {k} is not a multiple of {QK}");
        }
        if data.len() != n * (k / QK) * Q4_1_BLOCK_BYTES {
            bail!(
                "Q4_1 {n}x{k} needs {} bytes, got {}",
                n * (k / QK) * Q4_1_BLOCK_BYTES,
                data.len()
            );
        }
        Ok(Q4_1Matrix { n, k, data })
    }

    /// Copies the blocks of a `[n, k]` Q4_1 `QTensor`.
    pub fn from_qtensor(t: &QTensor) -> Result<Self> {
        if t.dtype() != GgmlDType::Q4_1 {
            bail!("expected a Q4_1 tensor, got {:?}", t.dtype());
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

    /// `y[m, n] = x[m, k] · Wᵀ` with the fastest kernel this CPU has (VNNI where
    /// present: see `Kernel::Vnni`).
    pub fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_with(Kernel::detect(), x, m, y)
    }

    /// As `matmul`, with a chosen kernel (it falls back to scalar if unavailable).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        let (n, k, kb) = (self.n, self.k, self.k / QK);
        if !check_shapes("Q4_1", x, y, m, k, n)? {
            return Ok(());
        }
        let acts = quantize_rows(x, m, k, kb, BlockQ8_1::ZERO, quantize_row_q8_1);
        let groups = dot::group_scales(&acts, m, kb);
        let row_bytes = kb * Q4_1_BLOCK_BYTES;
        matmul_rows(&self.data, row_bytes, &acts, kb, m, y, |w, r0, a, out| {
            let g = &groups[(r0 / 4 * kb * 8).min(groups.len())..];
            dot::dot_rows(kernel, w, a, g, out)
        });
        Ok(())
    }
}

impl super::RowMatrix for Q4_1Matrix {
    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q4_1
    }

    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        Q4_1Matrix::matmul(self, x, m, y)
    }

    fn row(&self, i: usize, out: &mut [f32]) {
        let row_bytes = self.k / QK * Q4_1_BLOCK_BYTES;
        let row = &self.data[i * row_bytes..(i + 1) * row_bytes];
        for (b, o) in row
            .chunks_exact(Q4_1_BLOCK_BYTES)
            .zip(out.chunks_exact_mut(QK))
        {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            let min = f16::from_le_bytes([b[2], b[3]]).to_f32();
            // Low nibbles are the block's first 16 values, high nibbles the last 16.
            for (j, &q) in b[4..].iter().enumerate() {
                o[j] = d * f32::from(q & 0x0F) + min;
                o[j + QK / 2] = d * f32::from(q >> 4) + min;
            }
        }
    }
}
