//! One input's activation rows quantized once for several products: a layer's q, k and
//! v (or gate and up) read the same normalised rows, and each product quantized them
//! again (three quantizing passes, each a fork-join on the pool, for one).
//! `Linear::forward_shared` quantizes once wherever the matrices take the same
//! activation blocks; each product then gives the bits its own `matmul` would.

use super::q8_0::BlockQ8_0;
use super::q8_1::BlockQ8_1;
use candle_core::quantized::k_quants::BlockQ8K;
use candle_core::{bail, Result};

/// The activation blocks a format's kernels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActsKind {
    /// Q8_1 (32 values, scale and sum): Q4_1's.
    Q8_1,
    /// Q8_0 (32 values and a scale): Q8_0's.
    Q8_0,
    /// Q8_K (256 values, scale, 16 sums): the k-quants'.
    Q8K,
}

/// `m` activation rows quantized for one `ActsKind`, `k / block` blocks a row.
pub enum QuantizedRows {
    Q8_1(Vec<BlockQ8_1>),
    Q8_0(Vec<BlockQ8_0>),
    Q8K(Vec<BlockQ8K>),
}

/// Empty: a buffer for `RowMatrix::quantize_into` to fill.
impl Default for QuantizedRows {
    fn default() -> Self {
        QuantizedRows::Q8_1(Vec::new())
    }
}

/// Defines `QuantizedRows::$fn`: the blocks of that kind to fill, keeping the buffer
/// where it already holds that kind (its capacity is then reused).
macro_rules! blocks_to_fill {
    ($fn:ident, $variant:ident, $ty:ty) => {
        pub(crate) fn $fn(&mut self) -> &mut Vec<$ty> {
            if !matches!(self, QuantizedRows::$variant(_)) {
                *self = QuantizedRows::$variant(Vec::new());
            }
            match self {
                QuantizedRows::$variant(v) => v,
                // Made this variant just above.
                _ => unreachable!("QuantizedRows::{} set above", stringify!($variant)),
            }
        }
    };
}

impl QuantizedRows {
    blocks_to_fill!(q8_1_mut, Q8_1, BlockQ8_1);
    blocks_to_fill!(q8_0_mut, Q8_0, BlockQ8_0);
    blocks_to_fill!(q8k_mut, Q8K, BlockQ8K);

    pub fn kind(&self) -> ActsKind {
        match self {
            QuantizedRows::Q8_1(_) => ActsKind::Q8_1,
            QuantizedRows::Q8_0(_) => ActsKind::Q8_0,
            QuantizedRows::Q8K(_) => ActsKind::Q8K,
        }
    }
}

/// Defines `checked::$variant(what, acts, (m, kb, n), y)`: the blocks of `acts` if they
/// are of that kind, `m` rows of `kb` blocks, for a product of `y.len() == m * n`
/// results; an error naming `what` otherwise.
macro_rules! blocks_of {
    ($variant:ident, $ty:ty) => {
        pub(crate) fn $variant<'a>(
            what: &str,
            acts: &'a QuantizedRows,
            (m, kb, n): (usize, usize, usize),
            y: &[f32],
        ) -> Result<&'a [$ty]> {
            let QuantizedRows::$variant(a) = acts else {
                bail!("{what} matmul: activations quantized as {:?}", acts.kind());
            };
            if a.len() != m * kb || y.len() != m * n {
                bail!(
                    "{what} matmul: {} activation blocks and {} results for m={m}, {kb} blocks a row, n={n}",
                    a.len(),
                    y.len()
                );
            }
            Ok(a)
        }
    };
}

#[allow(non_snake_case)]
pub(crate) mod checked {
    use super::*;
    blocks_of!(Q8_1, BlockQ8_1);
    blocks_of!(Q8_0, BlockQ8_0);
    blocks_of!(Q8K, BlockQ8K);
}
