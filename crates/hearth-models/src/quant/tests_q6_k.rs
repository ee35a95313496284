//! The repacked Q6_K kernel against ggml's reference dot product (candle's scalar
//! `vec_dot_unopt`) on the same blocks, its SIMD and portable paths against each other,
//! its batch invariance, and the repacking of every weight.

use super::dot_q6_k::{dot_pair, dot_unit, dot_unit_scalar, Q6KX8};
use super::tests_blocks::values;
use super::tests_q4_k::q8k;
use super::*;
use candle_core::quantized::k_quants::{BlockQ6K, QK_K};
use candle_core::quantized::{GgmlDType, GgmlType, QTensor};
use candle_core::{Device, Tensor};

fn q6k(n: usize, k: usize) -> QTensor {
    let w = Tensor::from_vec(values(3, n * k, 0.1), (n, k), &Device::Cpu).expect("w");
    QTensor::quantize(&w, GgmlDType::Q6K).expect("quantize")
}

/// 13 weight rows (a padded last unit), 70 activation rows (past one tile): every output
/// within f32 rounding of ggml's reference dot product on the same blocks.
#[test]
fn repacked_kernel_matches_reference_dot() {
    let (n, k, m) = (13, 3 * QK_K, 70);
    let t = q6k(n, k);
    let held = Q6KMatrix::from_qtensor(&t).expect("held");
    let kb = k / QK_K;
    let blocks = BlockMatrix::<BlockQ6K>::from_qtensor(&t).expect("blocks");
    let x = values(5, m * k, 1.0);
    let mut y = vec![0f32; m * n];
    held.matmul(&x, m, &mut y).expect("matmul");
    for r in 0..m {
        let a = q8k(&x[r * k..(r + 1) * k]);
        for i in 0..n {
            let w = &blocks.blocks()[i * kb..(i + 1) * kb];
            let want = BlockQ6K::vec_dot_unopt(k, w, &a);
            let got = y[r * n + i];
            let tol = 1e-5 * want.abs().max(1.0);
            assert!((got - want).abs() <= tol, "[{r},{i}] {got} vs {want}");
        }
    }
}

/// The SIMD paths (those this CPU has) and the portable one agree bit for bit, for 1 to
/// 9 activation rows (every tile shape), with weights and activations at their extremes
/// too (q 63 and 0, scales 127 and -128, |q8| 127).
#[test]
fn simd_and_portable_paths_agree_exactly() {
    let k = 3 * QK_K;
    let held = Q6KMatrix::from_qtensor(&q6k(8, k)).expect("held");
    let (mut high, mut low) = (held.unit(0, 1), held.unit(0, 2));
    for r in 0..8 {
        for w in 0..QK_K {
            high.set_q(r, w, 63);
            low.set_q(r, w, 0);
        }
    }
    high.scales = [[127; 8]; 16];
    low.scales = [[-128; 8]; 16];
    let units: Vec<Q6KX8> = vec![held.unit(0, 0), high, low];
    for m in 1..=9 {
        let mut x = values(8, m * k, 3.0);
        x[..k].iter_mut().for_each(|v| *v = 1.0);
        let a = q8k(&x);
        let mut portable = vec![0f32; 8 * m];
        dot_unit_scalar(&units, &a, &mut portable, 8);
        for kernel in [Kernel::Avx2, Kernel::Vnni] {
            let mut simd = vec![0f32; 8 * m];
            dot_unit(kernel, &units, &a, &mut simd, 8);
            assert_eq!(simd, portable, "m={m} {:?}", kernel.effective());
        }
        // The 512-bit pair kernel (where the CPU has it): two unit rows side by side.
        let pair: Vec<Q6KX8> = units.iter().chain(units.iter().rev()).copied().collect();
        let mut want = vec![0f32; 16 * m];
        dot_unit_scalar(&pair[..3], &a, &mut want, 16);
        dot_unit_scalar(&pair[3..], &a, &mut want[8..], 16);
        let mut got = vec![0f32; 16 * m];
        dot_pair(Kernel::Vnni512, 3, &pair, &a, &mut got, 16);
        assert_eq!(got, want, "m={m} {:?}", Kernel::Vnni512.effective());
    }
}

/// A row's outputs are bit-identical whether it is multiplied alone or inside a batch.
#[test]
fn outputs_do_not_depend_on_the_batch() {
    let (n, k, m) = (9, 2 * QK_K, 67);
    let held = Q6KMatrix::from_qtensor(&q6k(n, k)).expect("held");
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

/// `set_q` and `q` address each of a unit's 8 x 256 weights alone: a distinct value per
/// weight reads back everywhere.
#[test]
fn every_weight_has_its_own_bits() {
    let mut u = Q6KX8::ZERO;
    let val = |r: usize, w: usize| ((r * 7 + w * 13) % 64) as u8;
    for r in 0..8 {
        for w in 0..QK_K {
            u.set_q(r, w, val(r, w));
        }
    }
    for r in 0..8 {
        for w in 0..QK_K {
            assert_eq!(u.q(r, w), val(r, w), "row {r} weight {w}");
        }
    }
}

#[test]
fn bad_sizes_are_errors() {
    assert!(Q6KMatrix::from_bytes(2, 100, &[]).is_err());
    assert!(Q6KMatrix::from_bytes(2, QK_K, &[0u8; 210]).is_err());
}
