//! A Q6_K weight matrix repacked on load into units of 8 interleaved rows (`Q6KX8`, no
//! larger than the file's blocks) and its matmul `y = x · Wᵀ`. Q4_K_M files keep their
//! token embeddings (a tied LM head) and some v and down matrices in Q6_K.

use super::dot_q6_k::{dot_pair, dot_unit, Q6KX8, ROWS};
use super::k_units;
use super::shared_acts::{ActsKind, QuantizedRows};
use super::{Kernel, RowMatrix};
use candle_core::quantized::k_quants::QK_K;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};

/// ggml block_q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 i8 scales,
/// f16 d.
const BLOCK_BYTES: usize = 210;

#[derive(Debug)]
pub struct Q6KMatrix {
    n: usize,
    k: usize,
    /// `[unit][super-block]`: `n.div_ceil(8)` units of `k / 256` each.
    units: Vec<Q6KX8>,
}

impl Q6KMatrix {
    /// Repacks the blocks of a `[n, k]` Q6_K tensor.
    pub fn from_qtensor(t: &QTensor) -> Result<Self> {
        if t.dtype() != GgmlDType::Q6K {
            bail!("expected a Q6_K tensor, got {:?}", t.dtype());
        }
        let (n, k) = t.shape().dims2()?;
        Self::from_bytes(n, k, &t.data()?)
    }

    /// From ggml's raw Q6_K bytes, row-major.
    pub fn from_bytes(n: usize, k: usize, bytes: &[u8]) -> Result<Self> {
        let units =
            k_units::repack_rows("Q6_K", (n, k), bytes, BLOCK_BYTES, Q6KX8::ZERO, pack_row)?;
        Ok(Q6KMatrix { n, k, units })
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
        k_units::matmul_quantized("Q6_K", kernel, &self.units, nk, acts, m, y, dots)
    }
}

#[cfg(test)]
impl Q6KMatrix {
    pub(crate) fn unit(&self, g: usize, b: usize) -> Q6KX8 {
        self.units[g * (self.k / QK_K) + b]
    }
}

/// ggml's unsigned 6-bit weight `k` of a block (`dequantize_row_q6_K`): in half
/// `n = k / 128`, quarter `c` and place `l < 32`, the low 4 bits are nibble `c / 2` of
/// `ql[64n + 32(c % 2) + l]` and the high 2 bits are bits `2c..` of `qh[32n + l]`.
fn ggml_q6(blk: &[u8], k: usize) -> u8 {
    let (n, c, l) = (k / 128, (k % 128) / 32, k % 32);
    let low = blk[64 * n + 32 * (c % 2) + l] >> (4 * (c / 2)) & 0x0F;
    let high = blk[128 + 32 * n + l] >> (2 * c) & 0x03;
    low | high << 4
}

/// Puts one ggml block into row `r` of unit `u` (the layout `Q6KX8::set_q` documents,
/// each byte written once).
fn pack_row(u: &mut Q6KX8, r: usize, blk: &[u8]) {
    let q: [u8; QK_K] = std::array::from_fn(|k| ggml_q6(blk, k));
    for (p, g) in u.groups.iter_mut().enumerate() {
        let q = &q[32 * p..32 * (p + 1)];
        for b in 0..4 {
            for v in 0..4 {
                g.ql[v][r][b] = (q[4 * v + b] & 0x0F) | (q[16 + 4 * v + b] & 0x0F) << 4;
            }
            for h in 0..2 {
                g.qh[h][r][b] =
                    (0..4).fold(0, |acc, v| acc | (q[16 * h + 4 * v + b] >> 4) << (2 * v));
            }
        }
    }
    for s in 0..16 {
        u.scales[s][r] = blk[192 + s] as i8;
    }
    u.d[r] = u16::from_le_bytes([blk[208], blk[209]]);
}

impl RowMatrix for Q6KMatrix {
    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q6K
    }

    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_with(Kernel::detect(), x, m, y)
    }

    fn acts_kind(&self) -> Option<ActsKind> {
        Some(ActsKind::Q8K)
    }

    fn quantize_into(&self, x: &[f32], m: usize, acts: &mut QuantizedRows) -> Result<()> {
        k_units::quantize("Q6_K", x, (m, self.k), acts)
    }

    fn matmul_quantized(&self, acts: &QuantizedRows, m: usize, y: &mut [f32]) -> Result<()> {
        self.product(Kernel::detect(), acts, m, y)
    }

    /// As candle's `to_float`: `d * scale * (q - 32)`, left to right.
    fn row(&self, i: usize, out: &mut [f32]) {
        let kb = self.k / QK_K;
        let (g, r) = (i / ROWS, i % ROWS);
        for (u, o) in self.units[g * kb..(g + 1) * kb]
            .iter()
            .zip(out.chunks_exact_mut(QK_K))
        {
            let d = half::f16::from_bits(u.d[r]).to_f32();
            for (k, o) in o.iter_mut().enumerate() {
                let q = u.q(r, k) as i8 - 32;
                *o = d * u.scales[k / 16][r] as f32 * q as f32;
            }
        }
    }
}
