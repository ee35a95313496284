//! What the decoders ask of a quantized weight matrix held by hearth: `y = x · Wᵀ` on
//! hearth's pool, and single rows dequantized (token embeddings are rows of a matrix
//! that a tied LM head multiplies with, so one copy serves both).

use candle_core::quantized::GgmlDType;
use candle_core::Result;

pub trait RowMatrix: std::fmt::Debug + Send + Sync {
    /// Output features (weight rows).
    fn n(&self) -> usize;
    /// Input features.
    fn k(&self) -> usize;
    fn dtype(&self) -> GgmlDType;
    /// `y[m, n] = x[m, k] · Wᵀ`.
    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()>;
    /// Row `i` (< `n`) into `out` (`k` values); callers check the bounds
    /// (`Linear::embedding`).
    fn row(&self, i: usize, out: &mut [f32]);
}
