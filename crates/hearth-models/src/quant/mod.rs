//! Quantized matmul kernels (Q4_1, Q8_0, Q4_K, Q6_K, and candle's dot products for the other block
//! types) on one rayon pool, and the `Linear` layer that picks them per weight type.

mod blocks;
mod dot_q4_1;
mod dot_q4_k;
mod dot_q6_k;
mod dot_q8_0;
mod k_units;
mod kernel;
mod linear;
mod pairs;
mod q4_1;
mod q4_k;
mod q6_k;
mod q8_0;
mod q8_1;
mod q8_k;
mod row_matrix;
pub(crate) mod shared_acts;
pub(crate) mod shared_products;
mod simd;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_blocks;
#[cfg(test)]
mod tests_q4_k;
#[cfg(test)]
mod tests_q6_k;
#[cfg(test)]
mod tests_q8_0;
#[cfg(test)]
mod tests_shared;
mod tiled;
mod units;

pub use blocks::{block_matrix, BlockMatrix};
pub use kernel::Kernel;
pub use linear::Linear;
pub use linear::MatrixForm;
pub use q4_1::{Q4_1Matrix, Q4_1_BLOCK_BYTES};
pub use q4_k::Q4KMatrix;
pub use q6_k::Q6KMatrix;
pub use q8_0::{quantize_row_q8_0, BlockQ8_0, Q8_0Matrix, Q8_0_BLOCK_BYTES};
pub use q8_1::{quantize_row_q8_1, BlockQ8_1, QK};
pub use row_matrix::RowMatrix;
pub use shared_acts::{ActsKind, QuantizedRows};
