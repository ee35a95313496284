//! Weights of any other ggml block type (Q4_0, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K) held once, in the
//! file's own blocks, and multiplied with candle's per-type dot products on hearth's
//! rayon pool (`tiled::matmul_rows`). Candle's own `QMatMul` would, on x86, keep a
//! second, repacked copy of every k-quant matrix after its first batched call (1.33x the
//! weights again) and run its own thread pool beside ours.

use super::q4_k::Q4KMatrix;
use super::q6_k::Q6KMatrix;
use super::tiled::{check_shapes, matmul_rows, quantize_rows};
use super::RowMatrix;
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ5K, BlockQ5_0, BlockQ5_1,
};
use candle_core::quantized::{GgmlDType, GgmlType, QTensor};
use candle_core::{bail, Result};
use std::sync::Arc;

/// `n` rows of `k` weights, `k / T::BLCK_SIZE` blocks a row.
#[derive(Debug)]
pub struct BlockMatrix<T> {
    n: usize,
    k: usize,
    blocks: Vec<T>,
}

impl<T: GgmlType + std::fmt::Debug + 'static> BlockMatrix<T> {
    /// Copies the blocks of a `[n, k]` tensor of type `T`.
    pub fn from_qtensor(t: &QTensor) -> Result<Self> {
        if t.dtype() != T::DTYPE {
            bail!("expected a {:?} tensor, got {:?}", T::DTYPE, t.dtype());
        }
        let (n, k) = t.shape().dims2()?;
        if !k.is_multiple_of(T::BLCK_SIZE) {
            bail!(
                "{:?} row length {k} is not a multiple of {}",
                T::DTYPE,
                T::BLCK_SIZE
            );
        }
        let count = n * (k / T::BLCK_SIZE);
        let bytes = t.data()?;
        if bytes.len() != count * std::mem::size_of::<T>() {
            bail!(
                "{:?} {n}x{k} needs {count} blocks, got {} bytes",
                T::DTYPE,
                bytes.len()
            );
        }
        let mut blocks = vec![T::zeros(); count];
        // SAFETY: ggml blocks are plain `repr(C)` bytes (candle reads files into them the
        // same way); the destination holds exactly `bytes.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                blocks.as_mut_ptr() as *mut u8,
                bytes.len(),
            )
        };
        Ok(BlockMatrix { n, k, blocks })
    }

    /// The blocks, row-major: `k / T::BLCK_SIZE` a row.
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> &[T] {
        &self.blocks
    }
}

impl<T: GgmlType + std::fmt::Debug + 'static> RowMatrix for BlockMatrix<T> {
    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn dtype(&self) -> GgmlDType {
        T::DTYPE
    }

    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        let (n, k, kb) = (self.n, self.k, self.k / T::BLCK_SIZE);
        if !check_shapes("block", x, y, m, k, n)? {
            return Ok(());
        }
        let mut acts = Vec::new();
        let from_float = |x: &[f32], a: &mut [T::VecDotType]| T::VecDotType::from_float(x, a);
        quantize_rows(x, (m, k, kb), T::VecDotType::zeros(), from_float, &mut acts);
        matmul_rows(&self.blocks, kb, &acts, kb, m, y, |w, a| {
            T::vec_dot(k, w, a)
        });
        Ok(())
    }

    fn row(&self, i: usize, out: &mut [f32]) {
        let kb = self.k / T::BLCK_SIZE;
        T::to_float(&self.blocks[i * kb..(i + 1) * kb], out);
    }
}

/// The block matrix for `t`'s type (Q4_K and Q6_K are repacked for their own kernels), or `None` for a type this module does not hold
/// (floats, and Q4_1/Q8_0, which have kernels of their own).
pub fn block_matrix(t: &QTensor) -> Result<Option<Arc<dyn RowMatrix>>> {
    fn of<T: GgmlType + std::fmt::Debug + 'static>(
        t: &QTensor,
    ) -> Result<Option<Arc<dyn RowMatrix>>> {
        Ok(Some(Arc::new(BlockMatrix::<T>::from_qtensor(t)?)))
    }
    match t.dtype() {
        GgmlDType::Q4_0 => of::<BlockQ4_0>(t),
        GgmlDType::Q5_0 => of::<BlockQ5_0>(t),
        GgmlDType::Q5_1 => of::<BlockQ5_1>(t),
        GgmlDType::Q2K => of::<BlockQ2K>(t),
        GgmlDType::Q3K => of::<BlockQ3K>(t),
        GgmlDType::Q4K => Ok(Some(Arc::new(Q4KMatrix::from_qtensor(t)?))),
        GgmlDType::Q5K => of::<BlockQ5K>(t),
        GgmlDType::Q6K => Ok(Some(Arc::new(Q6KMatrix::from_qtensor(t)?))),
        _ => Ok(None),
    }
}
