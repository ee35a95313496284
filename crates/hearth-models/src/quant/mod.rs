//! Quantized matmul kernels that candle lacks a SIMD path for (Q4_1 today), and the
//! `Linear` layer that picks them or candle's `QMatMul` per weight type.

mod dot;
mod linear;
mod q4_1;
mod q8_1;
#[cfg(test)]
mod tests;

pub use dot::Kernel;
pub use linear::Linear;
pub use q4_1::{Q4_1Matrix, Q4_1_BLOCK_BYTES};
pub use q8_1::{quantize_row_q8_1, BlockQ8_1, QK};
