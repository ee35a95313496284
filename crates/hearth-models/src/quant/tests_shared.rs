//! `Linear::forward_shared`: one quantization of the input for several products gives
//! each product the bits of its own `forward`, for every format that shares; matrices
//! that take other activation blocks fall back; bad inputs are errors.

use super::*;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::sync::Arc;

/// A held matrix of `n` x `k` deterministic weights in `dtype`.
fn held(dtype: GgmlDType, n: usize, k: usize, seed: u32) -> Linear {
    let w: Vec<f32> = (0..n * k)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (h % 2001) as f32 / 1000.0 - 1.0 + 0.02
        })
        .collect();
    let t = Tensor::from_vec(w, (n, k), &Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, dtype).expect("quantize");
    let l = Linear::new(Arc::new(q), false).expect("linear");
    assert!(matches!(&l, Linear::Quantized(m) if m.dtype() == dtype));
    l
}

fn input(dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
        .collect();
    Tensor::from_vec(x, dims, &Device::Cpu).expect("x")
}

fn bits(t: &Tensor) -> Vec<u32> {
    let v = t
        .flatten_all()
        .expect("flat")
        .to_vec1::<f32>()
        .expect("vec");
    v.iter().map(|x| x.to_bits()).collect()
}

/// Each shared result against the matrix's own `forward`, for decode-sized and
/// prefill-sized inputs (tiles of 8, 4 and 1 rows) and a 3-D one.
fn assert_same_as_forward<const N: usize>(mats: &[&Linear; N], k: usize) {
    for dims in [
        vec![1, k],
        vec![4, k],
        vec![8, k],
        vec![13, k],
        vec![2, 3, k],
    ] {
        let x = input(&dims);
        let shared = Linear::forward_shared(mats, &x).expect("shared");
        assert_eq!(shared.len(), mats.len());
        for (l, y) in mats.iter().zip(&shared) {
            let own = l.forward(&x).expect("forward");
            assert_eq!(y.dims(), own.dims(), "{dims:?}");
            assert_eq!(bits(y), bits(&own), "{dims:?}");
        }
    }
}

#[test]
fn q4_1_q_k_v_share_one_quantization_with_the_bits_of_their_own() {
    let (q, k, v) = (
        held(GgmlDType::Q4_1, 40, 64, 1),
        held(GgmlDType::Q4_1, 16, 64, 2),
        held(GgmlDType::Q4_1, 24, 64, 3),
    );
    assert_same_as_forward(&[&q, &k, &v], 64);
}

#[test]
fn q8_0_and_k_quants_share_where_their_blocks_agree() {
    let (a, b) = (
        held(GgmlDType::Q8_0, 24, 64, 4),
        held(GgmlDType::Q8_0, 8, 64, 5),
    );
    assert_same_as_forward(&[&a, &b], 64);
    // Q4_K and Q6_K both read Q8_K rows: a Q4_K_M file's q/k (Q4_K) with v (Q6_K).
    let (q, v) = (
        held(GgmlDType::Q4K, 24, 256, 6),
        held(GgmlDType::Q6K, 16, 256, 7),
    );
    assert_same_as_forward(&[&q, &v], 256);
}

#[test]
fn other_blocks_fall_back_to_separate_products() {
    // Q4_1 reads Q8_1 rows and Q8_0 reads Q8_0 rows; Q5_0 runs on candle's dot products.
    let (a, b, c) = (
        held(GgmlDType::Q4_1, 16, 64, 8),
        held(GgmlDType::Q8_0, 16, 64, 9),
        held(GgmlDType::Q5_0, 8, 64, 10),
    );
    assert_same_as_forward(&[&a, &b], 64);
    assert_same_as_forward(&[&a, &c], 64);
    assert_same_as_forward(&[&c], 64);
}

#[test]
fn rows_quantized_for_one_kind_are_refused_by_another() {
    let (a, b) = (
        held(GgmlDType::Q4_1, 16, 64, 11),
        held(GgmlDType::Q8_0, 16, 64, 12),
    );
    let (Linear::Quantized(a), Linear::Quantized(b)) = (a, b) else {
        panic!("held matrices");
    };
    assert_eq!(a.acts_kind(), Some(ActsKind::Q8_1));
    assert_eq!(b.acts_kind(), Some(ActsKind::Q8_0));
    let x = vec![0.5f32; 3 * 64];
    let acts = a.quantize(&x, 3).expect("quantize");
    let mut y = vec![0f32; 3 * 16];
    // Another kind, another row count, a short output: errors, not wrong numbers.
    assert!(b.matmul_quantized(&acts, 3, &mut y).is_err());
    assert!(a.matmul_quantized(&acts, 2, &mut y).is_err());
    assert!(a.matmul_quantized(&acts, 3, &mut y[..10]).is_err());
    assert!(a.quantize(&x[..100], 3).is_err());
    a.matmul_quantized(&acts, 3, &mut y).expect("same kind");
    let mut own = vec![0f32; 3 * 16];
    a.matmul(&x, 3, &mut own).expect("matmul");
    assert_eq!(y, own);
}

#[test]
fn bad_inputs_are_errors() {
    let (a, b) = (
        held(GgmlDType::Q4_1, 16, 64, 13),
        held(GgmlDType::Q4_1, 16, 64, 14),
    );
    let wrong_k = Tensor::zeros((2, 63), DType::F32, &Device::Cpu).expect("x");
    assert!(Linear::forward_shared(&[&a, &b], &wrong_k).is_err());
    let f16 = Tensor::zeros((2, 64), DType::F16, &Device::Cpu).expect("x");
    assert!(Linear::forward_shared(&[&a, &b], &f16).is_err());
    let strided = input(&[64, 2]).t().expect("transpose");
    assert!(Linear::forward_shared(&[&a, &b], &strided).is_err());
    let none: [Tensor; 0] = Linear::forward_shared(&[], &input(&[2, 64])).expect("none");
    assert!(none.is_empty());
}
