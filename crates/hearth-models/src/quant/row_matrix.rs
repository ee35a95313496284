//! What the decoders ask of a quantized weight matrix held by hearth: `y = x · Wᵀ` on
//! hearth's pool, and single rows dequantized (token embeddings are rows of a matrix
//! that a tied LM head multiplies with, so one copy serves both).

use super::shared_acts::{ActsKind, QuantizedRows};
use candle_core::quantized::GgmlDType;
use candle_core::{bail, Result};

pub trait RowMatrix: std::fmt::Debug + Send + Sync {
    /// Output features (weight rows).
    fn n(&self) -> usize;
    /// Input features.
    fn k(&self) -> usize;
    fn dtype(&self) -> GgmlDType;
    /// `y[m, n] = x[m, k] · Wᵀ`.
    fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()>;
    /// The activation blocks `matmul` quantizes `x` into; `None` where it has no such
    /// step that another product could share.
    fn acts_kind(&self) -> Option<ActsKind> {
        None
    }
    /// `x`'s `m` rows quantized as `matmul` quantizes them (`acts_kind`).
    fn quantize(&self, x: &[f32], m: usize) -> Result<QuantizedRows> {
        let mut acts = QuantizedRows::default();
        self.quantize_into(x, m, &mut acts)?;
        Ok(acts)
    }
    /// `quantize` into `acts`, whose buffer is reused where it holds this kind already
    /// (a step's layers quantize into one buffer, allocating only when it grows).
    fn quantize_into(&self, _x: &[f32], _m: usize, _acts: &mut QuantizedRows) -> Result<()> {
        bail!(
            "{:?} matrices quantize no activations of their own",
            self.dtype()
        )
    }
    /// `y[m, n]` from rows that `quantize` of a matrix with this `acts_kind` and `k`
    /// made: the bits `matmul` gives for the same rows.
    fn matmul_quantized(&self, _acts: &QuantizedRows, _m: usize, _y: &mut [f32]) -> Result<()> {
        bail!("{:?} matrices take no quantized activations", self.dtype())
    }
    /// Row `i` (< `n`) into `out` (`k` values); callers check the bounds
    /// (`Linear::embedding`).
    fn row(&self, i: usize, out: &mut [f32]);
}
