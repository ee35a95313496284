//! A Q4_K weight matrix repacked on load into units of 8 interleaved rows (`Q4KX8`) and
//! its matmul `y = x · Wᵀ`. The file's own blocks are dropped after repacking; the
//! per-pair path (`BlockMatrix<BlockQ4K>`) remains for the A/B benchmark.

use super::dot_q4_k::{dot_pair, dot_unit, scales_and_mins, Q4KX8, ROWS};
use super::k_units;
use super::shared_acts::{ActsKind, QuantizedRows};
use super::{Kernel, RowMatrix};
use candle_core::quantized::k_quants::QK_K;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};

/// ggml block_q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 of nibbles.
const BLOCK_BYTES: usize = 144;

#[derive(Debug)]
pub struct Q4KMatrix {
    n: usize,
    k: usize,
    /// `[unit][super-block]`: `n.div_ceil(8)` units of `k / 256` each.
    units: Vec<Q4KX8>,
}

impl Q4KMatrix {
    /// Repacks the blocks of a `[n, k]` Q4_K tensor.
    pub fn from_qtensor(t: &QTensor) -> Result<Self> {
        if t.dtype() != GgmlDType::Q4K {
            bail!("expected a Q4_K tensor, got {:?}", t.dtype());
        }
        let (n, k) = t.shape().dims2()?;
        Self::from_bytes(n, k, &t.data()?)
    }

    /// From ggml's raw Q4_K bytes, row-major.
    pub fn from_bytes(n: usize, k: usize, bytes: &[u8]) -> Result<Self> {
        let units =
            k_units::repack_rows("Q4_K", (n, k), bytes, BLOCK_BYTES, Q4KX8::ZERO, pack_row)?;
        Ok(Q4KMatrix { n, k, units })
    }

    /// `y[m, n] = x[m, k] · Wᵀ` with a chosen kernel (a slower one where the CPU lacks
    /// it); all kernels give the same bits.
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        let acts = super::RowMatrix::quantize(self, x, m)?;
        self.product(kernel, &acts, m, y)
    }

    /// `y[m, n]` from `m` quantized rows, with `kernel`.
    fn product(&self, kernel: Kernel, acts: &QuantizedRows, m: usize, y: &mut [f32]) -> Result<()> {
        let (nk, dots) = ((self.n, self.k), (dot_unit, dot_pair));
        k_units::matmul_quantized("Q4_K", kernel, &self.units, nk, acts, m, y, dots)
    }
}

#[cfg(test)]
impl Q4KMatrix {
    pub(crate) fn unit(&self, g: usize, b: usize) -> Q4KX8 {
        self.units[g * (self.k / QK_K) + b]
    }
}

/// Puts one ggml block into row `r` of unit `u`.
fn pack_row(u: &mut Q4KX8, r: usize, blk: &[u8]) {
    u.d[r] = u16::from_le_bytes([blk[0], blk[1]]);
    u.dmin[r] = u16::from_le_bytes([blk[2], blk[3]]);
    let mut packed = [0u8; 12];
    packed.copy_from_slice(&blk[4..16]);
    let (sc, mn) = scales_and_mins(&packed);
    for s in 0..8 {
        u.scales[s][r] = sc[s];
        u.mins[s / 2][r][s % 2] = mn[s];
    }
    let qs = &blk[16..];
    // ggml: weight 64h + l (l < 32) is the low nibble of qs[32h + l], 64h + 32 + l the high.
    let q = |k: usize| {
        let byte = qs[32 * (k / 64) + k % 32];
        if k % 64 < 32 {
            byte & 0x0F
        } else {
            byte >> 4
        }
    };
    for s in 0..8 {
        for v in 0..4 {
            for b in 0..4 {
                let k = 32 * s + 4 * v + b;
                u.qs[s][v][r][b] = q(k) | (q(k + 16) << 4);
            }
        }
    }
}

impl RowMatrix for Q4KMatrix {
    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q4K
    }

    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_with(Kernel::detect(), x, m, y)
    }

    fn acts_kind(&self) -> Option<ActsKind> {
        Some(ActsKind::Q8K)
    }

    fn quantize_into(&self, x: &[f32], m: usize, acts: &mut QuantizedRows) -> Result<()> {
        k_units::quantize("Q4_K", x, (m, self.k), acts)
    }

    fn matmul_quantized(&self, acts: &QuantizedRows, m: usize, y: &mut [f32]) -> Result<()> {
        self.product(Kernel::detect(), acts, m, y)
    }

    /// As candle's `to_float`: `d * sc * q - dmin * m`, with `d * sc` and `dmin * m`
    /// rounded to f32 first.
    fn row(&self, i: usize, out: &mut [f32]) {
        let kb = self.k / QK_K;
        let (g, r) = (i / ROWS, i % ROWS);
        for (u, o) in self.units[g * kb..(g + 1) * kb]
            .iter()
            .zip(out.chunks_exact_mut(QK_K))
        {
            let d = half::f16::from_bits(u.d[r]).to_f32();
            let dmin = half::f16::from_bits(u.dmin[r]).to_f32();
            for s in 0..8 {
                let d1 = d * u.scales[s][r] as f32;
                let m1 = dmin * u.mins[s / 2][r][s % 2] as f32;
                for l in 0..32 {
                    o[32 * s + l] = d1 * u.q(r, 32 * s + l) as f32 - m1;
                }
            }
        }
    }
}
