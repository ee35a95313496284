//! The repacked Q4_K kernel against ggml's reference dot product (candle's scalar
//! `vec_dot_unopt`) on the same blocks, its SIMD and portable paths against each other,
//! and its batch invariance.

use super::dot_q4_k::{dot_pair, dot_unit, dot_unit_scalar, scales_and_mins, Q4KX8};
use super::tests_blocks::values;
use super::*;
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8K, QK_K};
use candle_core::quantized::{GgmlDType, GgmlType, QTensor};
use candle_core::{Device, Tensor};

fn q4k(n: usize, k: usize) -> QTensor {
    let w = Tensor::from_vec(values(3, n * k, 0.1), (n, k), &Device::Cpu).expect("w");
    QTensor::quantize(&w, GgmlDType::Q4K).expect("quantize")
}

/// `x` as Q8_K activation blocks, by candle's quantizer.
pub(super) fn q8k(x: &[f32]) -> Vec<BlockQ8K> {
    let mut a = vec![BlockQ8K::zeros(); x.len() / QK_K];
    BlockQ8K::from_float(x, &mut a);
    a
}

/// 13 weight rows (a padded last unit), 70 activation rows (past one tile of 64): every
/// output within f32 rounding of ggml's reference dot product on the same blocks.
#[test]
fn repacked_kernel_matches_reference_dot() {
    let (n, k, m) = (13, 3 * QK_K, 70);
    let t = q4k(n, k);
    let held = Q4KMatrix::from_qtensor(&t).expect("held");
    let kb = k / QK_K;
    let blocks = BlockMatrix::<BlockQ4K>::from_qtensor(&t).expect("blocks");
    let x = values(5, m * k, 1.0);
    let mut y = vec![0f32; m * n];
    held.matmul(&x, m, &mut y).expect("matmul");
    for r in 0..m {
        let a = q8k(&x[r * k..(r + 1) * k]);
        for i in 0..n {
            let w = &blocks.blocks()[i * kb..(i + 1) * kb];
            let want = BlockQ4K::vec_dot_unopt(k, w, &a);
            let got = y[r * n + i];
            let tol = 1e-5 * want.abs().max(1.0);
            assert!((got - want).abs() <= tol, "[{r},{i}] {got} vs {want}");
        }
    }
}

/// The SIMD paths (those this CPU has) and the portable one agree bit for bit, with
/// weights and activations at their extremes too (nibbles 15, scales 63, |q8| 127).
/// 13 activation rows: the pair kernel's tiles of 8, 4 and 1.
#[test]
fn simd_and_portable_paths_agree_exactly() {
    let (k, m) = (2 * QK_K, 13);
    let held = Q4KMatrix::from_qtensor(&q4k(8, k)).expect("held");
    let mut extreme = held.unit(0, 1);
    extreme.qs = [[[[0xFF; 4]; 8]; 4]; 8];
    extreme.scales = [[63; 8]; 8];
    let units: Vec<Q4KX8> = vec![held.unit(0, 0), extreme];
    let mut x = values(8, m * k, 3.0);
    x[..k].iter_mut().for_each(|v| *v = 1.0);
    let a = q8k(&x);
    let mut portable = vec![0f32; 8 * m];
    dot_unit_scalar(&units, &a, &mut portable, 8);
    for kernel in [Kernel::Avx2, Kernel::Vnni] {
        let mut simd = vec![0f32; 8 * m];
        dot_unit(kernel, &units, &a, &mut simd, 8);
        assert_eq!(simd, portable, "{:?}", kernel.effective());
    }
    // The 512-bit pair kernel (where the CPU has it; else the 256-bit one per unit):
    // two unit rows side by side, 16 results a row.
    let pair: Vec<Q4KX8> = vec![units[0], units[1], units[1], units[0]];
    let mut want = vec![0f32; 16 * m];
    dot_unit_scalar(&pair[..2], &a, &mut want, 16);
    dot_unit_scalar(&pair[2..], &a, &mut want[8..], 16);
    let mut got = vec![0f32; 16 * m];
    dot_pair(Kernel::Vnni512, 2, &pair, &a, &mut got, 16);
    assert_eq!(got, want, "{:?}", Kernel::Vnni512.effective());
}

/// A row's outputs are bit-identical whether it is multiplied alone or inside a batch.
#[test]
fn outputs_do_not_depend_on_the_batch() {
    let (n, k, m) = (9, 2 * QK_K, 67);
    let held = Q4KMatrix::from_qtensor(&q4k(n, k)).expect("held");
    let x = values(9, m * k, 2.0);
    let mut all = vec![0f32; m * n];
    held.matmul(&x, m, &mut all).expect("batch");
    for r in [0, 5, 64, 66] {
        let mut one = vec![0f32; n];
        held.matmul(&x[r * k..(r + 1) * k], 1, &mut one)
            .expect("alone");
        assert_eq!(one, all[r * n..(r + 1) * n].to_vec(), "row {r}");
    }
}

/// ggml's 12-byte packing: 6-bit scales and mins, the high bits of 4..8 in the top bits
/// of bytes 0..8.
#[test]
fn scales_and_mins_unpack_ggml_packing() {
    let (sc, mn): ([u8; 8], [u8; 8]) =
        ([1, 2, 63, 40, 33, 17, 5, 62], [0, 9, 31, 63, 48, 1, 60, 7]);
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4);
    }
    assert_eq!(scales_and_mins(&s), (sc, mn));
}

#[test]
fn bad_sizes_are_errors() {
    assert!(Q4KMatrix::from_bytes(2, 100, &[]).is_err());
    assert!(Q4KMatrix::from_bytes(2, QK_K, &[0u8; 144]).is_err());
}
