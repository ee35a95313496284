//! A Q4_1 weight matrix repacked on load into units of 8 interleaved rows (`Q4_1X8`,
//! no larger than the file's blocks) and its matmul `y = x · Wᵀ` (see `tiled` for how
//! the work is split, `dot_q4_1` for the kernels).

use super::dot_q4_1::{dot_pair, dot_unit, Q4_1X8};
use super::kernel::Kernel;
use super::pairs;
use super::q8_1::{quantize_row_q8_1, BlockQ8_1, QK};
use super::shared_acts::{checked, ActsKind, QuantizedRows};
use super::units::{repack, ROWS};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};

/// ggml block_q4_1: f16 d, f16 m, 16 bytes of nibbles; value = d * q + m.
pub const Q4_1_BLOCK_BYTES: usize = 20;

/// `n` rows of `k` weights each.
#[derive(Debug, Clone)]
pub struct Q4_1Matrix {
    n: usize,
    k: usize,
    /// `[unit][block]`: `n.div_ceil(8)` units of `k / 32` blocks each (rows past `n`
    /// are zeros).
    units: Vec<Q4_1X8>,
}

impl Q4_1Matrix {
    /// From raw ggml bytes, row-major: `n * k / 32` blocks of 20 bytes.
    pub fn from_bytes(n: usize, k: usize, data: Vec<u8>) -> Result<Self> {
        if !k.is_multiple_of(QK) {
            bail!("Q4_1 row length {k} is not a multiple of {QK}");
        }
        let kb = k / QK;
        if data.len() != n * kb * Q4_1_BLOCK_BYTES {
            bail!(
                "Q4_1 {n}x{k} needs {} bytes, got {}",
                n * kb * Q4_1_BLOCK_BYTES,
                data.len()
            );
        }
        let units = repack(n, kb, Q4_1_BLOCK_BYTES, &data, Q4_1X8::ZERO, |u, r, blk| {
            u.d[r] = u16::from_le_bytes([blk[0], blk[1]]);
            u.m[r] = u16::from_le_bytes([blk[2], blk[3]]);
            for (v, run) in blk[4..].chunks_exact(4).enumerate() {
                u.qs[v][r].copy_from_slice(run);
            }
        });
        Ok(Q4_1Matrix { n, k, units })
    }

    /// Repacks the blocks of a `[n, k]` Q4_1 `QTensor`.
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
        let acts = super::RowMatrix::quantize(self, x, m)?;
        self.product(kernel, &acts, m, y)
    }

    /// `y[m, n]` from `m` quantized rows, with `kernel`.
    fn product(&self, kernel: Kernel, acts: &QuantizedRows, m: usize, y: &mut [f32]) -> Result<()> {
        let kb = self.k / QK;
        let a = checked::Q8_1("Q4_1", acts, (m, kb, self.n), y)?;
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

    fn acts_kind(&self) -> Option<ActsKind> {
        Some(ActsKind::Q8_1)
    }

    fn quantize_into(&self, x: &[f32], m: usize, acts: &mut QuantizedRows) -> Result<()> {
        let q8_1 = (BlockQ8_1::ZERO, quantize_row_q8_1);
        pairs::quantize_checked("Q4_1", x, (m, self.k, QK), q8_1, acts.q8_1_mut())
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
            let (d, min) = u.dm(r);
            for (e, o) in o.iter_mut().enumerate() {
                *o = d * f32::from(u.q(r, e)) + min;
            }
        }
    }
}
