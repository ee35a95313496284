//! What the k-quant unit matrices (`Q4KMatrix`, `Q6KMatrix`) share: ggml's row-major
//! bytes checked and repacked into units, and the matmul over Q8_K activation rows.

use super::pairs;
use super::q8_k::quantize_row_q8k;
use super::shared_acts::{checked, QuantizedRows};
use super::units::repack;
use super::Kernel;
use candle_core::quantized::k_quants::{BlockQ8K, QK_K};
use candle_core::quantized::GgmlType;
use candle_core::{bail, Result};

/// The `n.div_ceil(8) * (k / 256)` units of an `n x k` matrix of `name`'s blocks of
/// `block_bytes` in `bytes`; `set_row(unit, r, block)` puts a file block in row `r`.
pub(crate) fn repack_rows<U, F>(
    name: &str,
    (n, k): (usize, usize),
    bytes: &[u8],
    block_bytes: usize,
    zero: U,
    set_row: F,
) -> Result<Vec<U>>
where
    U: Copy + Send + Sync,
    F: Fn(&mut U, usize, &[u8]) + Sync,
{
    if !k.is_multiple_of(QK_K) {
        bail!("{name} row length {k} is not a multiple of {QK_K}");
    }
    let kb = k / QK_K;
    if bytes.len() != n * kb * block_bytes {
        bail!(
            "{name} {n}x{k} needs {} bytes, got {}",
            n * kb * block_bytes,
            bytes.len()
        );
    }
    Ok(repack(n, kb, block_bytes, bytes, zero, set_row))
}

/// `x`'s rows quantized to Q8_K into `acts`, as the k-quant kernels read them
/// (`RowMatrix::quantize_into`).
pub(crate) fn quantize(
    name: &str,
    x: &[f32],
    (m, k): (usize, usize),
    acts: &mut QuantizedRows,
) -> Result<()> {
    let q8k = (BlockQ8K::zeros(), quantize_row_q8k);
    pairs::quantize_checked(name, x, (m, k, QK_K), q8k, acts.q8k_mut())
}

/// `y[m, n] = x · Wᵀ` over `units` (`[unit][super-block]`) on rows `quantize` made:
/// `pairs::matmul` with the format's `dot_unit` and `dot_pair`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_quantized<W, U, P>(
    name: &str,
    kernel: Kernel,
    units: &[W],
    (n, k): (usize, usize),
    acts: &QuantizedRows,
    m: usize,
    y: &mut [f32],
    dots: (U, P),
) -> Result<()>
where
    W: Sync,
    U: Fn(Kernel, &[W], &[BlockQ8K], &mut [f32], usize) + Sync,
    P: Fn(Kernel, usize, &[W], &[BlockQ8K], &mut [f32], usize) + Sync,
{
    let kb = k / QK_K;
    let a = checked::Q8K(name, acts, (m, kb, n), y)?;
    pairs::matmul(kernel, units, kb, n, a, m, y, dots);
    Ok(())
}
