//! Q4_1 kernel vs an f64 reference, vs candle's `QMatMul`, and scalar vs AVX2.

use super::*;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use half::f16;
use std::sync::Arc;

/// Deterministic xorshift values in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

const SHAPES: [(usize, usize, usize); 8] = [
    (1, 8, 32),
    (3, 5, 64),
    (1, 1536, 576),
    (2, 576, 1536),
    (8, 1536, 576),
    (5, 37, 576),
    (64, 576, 1536),
    (70, 16, 1536), // more rows than one tile
];

/// Random weights (with an offset, so Q4_1's min matters), quantized by candle.
fn weights(rng: &mut Rng, n: usize, k: usize) -> QTensor {
    let w: Vec<f32> = rng.vec(n * k, 0.1).iter().map(|v| v + 0.02).collect();
    let t = Tensor::from_vec(w, (n, k), &Device::Cpu).expect("tensor");
    QTensor::quantize(&t, GgmlDType::Q4_1).expect("quantize")
}

fn kernels() -> Vec<Kernel> {
    [Kernel::Scalar, Kernel::Avx2, Kernel::Vnni, Kernel::Vnni512]
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

fn run(w: &Q4_1Matrix, kernel: Kernel, x: &[f32], m: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * w.n()];
    w.matmul_with(kernel, x, m, &mut y).expect("matmul");
    y
}

fn h(b: &[u8], i: usize) -> f64 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f64()
}

/// The whole weight matrix dequantized, exactly (f16 -> f64 is exact).
fn dequant(t: &QTensor) -> Vec<f64> {
    let mut out = Vec::new();
    for b in t.data().expect("data").chunks_exact(Q4_1_BLOCK_BYTES) {
        let (d, m) = (h(b, 0), h(b, 2));
        out.extend(b[4..].iter().map(|q| (q & 0x0F) as f64 * d + m));
        out.extend(b[4..].iter().map(|q| (q >> 4) as f64 * d + m));
    }
    out
}

fn quantize(x: &[f32], m: usize, k: usize) -> Vec<BlockQ8_1> {
    let mut a = vec![BlockQ8_1::ZERO; m * k / QK];
    for (x, a) in x.chunks(k).zip(a.chunks_mut(k / QK)) {
        quantize_row_q8_1(x, a);
    }
    a
}

/// Per output: (the Q4_1 x Q8_1 product in f64, the sum of its terms' magnitudes).
fn reference(t: &QTensor, a: &[BlockQ8_1], m: usize, n: usize, k: usize) -> Vec<(f64, f64)> {
    let w = dequant(t);
    let kb = k / QK;
    let mut out = Vec::new();
    for r in 0..m {
        for i in 0..n {
            let (mut sum, mut mag) = (0f64, 0f64);
            for b in 0..kb {
                let ab = &a[r * kb + b];
                for j in 0..QK {
                    let v = w[i * k + b * QK + j] * ab.qs[j] as f64 * ab.d as f64;
                    sum += v;
                    mag += v.abs();
                }
            }
            out.push((sum, mag));
        }
    }
    out
}

/// Against exact f64 arithmetic on the same quantized values, only f32 rounding is
/// left; it is bounded by ~k ulps of the terms' magnitude sum, 1e-5 relative here.
/// (ggml's s = f16(f16(sum) * d) stands in for d * sum(qs) in the min term; that
/// rounding, <= 2^-10 relative on |m_w * s_a|, is added to the bound.)
#[test]
fn kernel_matches_f64_reference_of_quantized_product() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (m, n, k) in SHAPES {
        let t = weights(&mut rng, n, k);
        let w = Q4_1Matrix::from_qtensor(&t).expect("Q4_1 matrix");
        let x = rng.vec(m * k, 2.0);
        let a = quantize(&x, m, k);
        let want = reference(&t, &a, m, n, k);
        let bytes = t.data().expect("data");
        let bb = k / QK * Q4_1_BLOCK_BYTES;
        for kernel in kernels() {
            let got = run(&w, kernel, &x, m);
            for (idx, (&g, &(r, mag))) in got.iter().zip(&want).enumerate() {
                let i = idx % n;
                let slack: f64 = bytes[i * bb..(i + 1) * bb]
                    .chunks_exact(Q4_1_BLOCK_BYTES)
                    .zip(&a[idx / n * k / QK..])
                    .map(|(b, ab)| (h(b, 2) * ab.s as f64).abs() * 2f64.powi(-10))
                    .sum();
                let err = (g as f64 - r).abs();
                assert!(
                    err <= 1e-5 * mag + slack + 1e-6,
                    "{kernel:?} m={m} n={n} k={k} [{idx}]: {g} vs {r} (mag {mag})"
                );
            }
        }
    }
}

/// Against the unquantized product: each activation moves by at most
/// d/2 (rounding) + 127 d 2^-11 (d stored as f16) < 0.57 d, so the error is bounded by
/// 0.57 sum_j |w_j| d_block(j), plus the min term's f16 rounding (as above) and f32
/// slack (1e-5 relative).
#[test]
fn kernel_is_close_to_unquantized_product() {
    let mut rng = Rng(7);
    for (m, n, k) in [(1, 64, 576), (4, 32, 1536)] {
        let t = weights(&mut rng, n, k);
        let w = Q4_1Matrix::from_qtensor(&t).expect("Q4_1 matrix");
        let (wf, bytes) = (dequant(&t), t.data().expect("data"));
        let x = rng.vec(m * k, 3.0);
        let a = quantize(&x, m, k);
        let got = run(&w, Kernel::detect(), &x, m);
        for r in 0..m {
            for i in 0..n {
                let (mut exact, mut bound) = (0f64, 1e-6);
                for j in 0..k {
                    let (wv, xv) = (wf[i * k + j], x[r * k + j] as f64);
                    let ab = &a[(r * k + j) / QK];
                    exact += wv * xv;
                    bound += 0.57 * wv.abs() * ab.d as f64 + 1e-5 * (wv * xv).abs();
                    if j % QK == 0 {
                        let mw = h(&bytes, (i * k + j) / QK * Q4_1_BLOCK_BYTES + 2);
                        bound += (mw * ab.s as f64).abs() * 2f64.powi(-10);
                    }
                }
                let err = (got[r * n + i] as f64 - exact).abs();
                assert!(err <= bound, "m={m} k={k} [{r},{i}]: {err} > {bound}");
            }
        }
    }
}

/// Our Q8_1 blocks are ggml's: same bytes as candle's quantizer.
#[test]
fn q8_1_matches_candle_quantizer() {
    let mut rng = Rng(11);
    let mut x = rng.vec(32 * 40, 5.0);
    x[0..32].fill(0.0); // all-zero block: d = 0
    x[40] = 1e3; // one large value dominating a block
    let t = Tensor::from_vec(x.clone(), x.len(), &Device::Cpu).expect("tensor");
    let theirs = QTensor::quantize(&t, GgmlDType::Q8_1).expect("quantize");
    let theirs = theirs.data().expect("data");
    let ours = quantize(&x, 1, x.len());
    for (b, c) in ours.iter().zip(theirs.chunks_exact(36)) {
        assert_eq!(
            f16::from_f32(b.d).to_bits(),
            u16::from_le_bytes([c[0], c[1]])
        );
        assert_eq!(
            f16::from_f32(b.s).to_bits(),
            u16::from_le_bytes([c[2], c[3]])
        );
        assert!(b.qs.iter().zip(&c[4..]).all(|(&q, &r)| q as u8 == r));
    }
}

fn candle_forward(t: QTensor, x: &[f32], m: usize, k: usize) -> Vec<f32> {
    let q = QMatMul::from_qtensor(t).expect("QMatMul");
    assert!(
        matches!(q, QMatMul::QTensor(_)),
        "candle must keep it quantized"
    );
    let x = Tensor::from_slice(x, (m, k), &Device::Cpu).expect("x");
    let y = q.forward(&x).expect("forward");
    y.flatten_all().expect("flat").to_vec1().expect("vec")
}

/// The scalar path does candle's arithmetic in candle's order: bit-identical. The AVX2
/// path sums in 8 lanes with FMA: within 1e-5 of the magnitude sum of the terms
/// (measured: printed below; well under 1e-6 of it).
#[test]
fn kernel_matches_candle_qmatmul() {
    let mut rng = Rng(3);
    for (m, n, k) in SHAPES {
        let t = weights(&mut rng, n, k);
        let w = Q4_1Matrix::from_qtensor(&t).expect("Q4_1 matrix");
        let x = rng.vec(m * k, 2.0);
        let want = reference(&t, &quantize(&x, m, k), m, n, k);
        let theirs = candle_forward(t, &x, m, k);
        assert_eq!(
            run(&w, Kernel::Scalar, &x, m),
            theirs,
            "scalar m={m} n={n} k={k}"
        );
        if Kernel::Avx2.is_available() {
            let ours = run(&w, Kernel::Avx2, &x, m);
            let worst = ours
                .iter()
                .zip(&theirs)
                .zip(&want)
                .map(|((a, b), (_, mag))| (a - b).abs() as f64 / mag.max(1e-9))
                .fold(0f64, f64::max);
            let abs = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("m={m} n={n} k={k}: AVX2 vs candle max abs {abs:e}, relative {worst:e}");
            assert!(worst < 1e-5, "AVX2 vs candle m={m} n={n} k={k}: {worst}");
        }
    }
}

#[test]
fn scalar_and_avx2_agree() {
    if !Kernel::Avx2.is_available() {
        eprintln!("no AVX2+FMA+F16C on this CPU: only the scalar path runs");
        return;
    }
    let mut rng = Rng(5);
    for (m, n, k) in SHAPES {
        let w = Q4_1Matrix::from_qtensor(&weights(&mut rng, n, k)).expect("matrix");
        let x = rng.vec(m * k, 1.0);
        let (s, v) = (run(&w, Kernel::Scalar, &x, m), run(&w, Kernel::Avx2, &x, m));
        // u4 x i8 never saturates maddubs: VNNI must give the very same floats.
        // The 512-bit pair kernel (two units a vector, a lone last unit at 256 bits)
        // too: n = 37 ends in a lone unit, n = 16 is one pair.
        for kernel in [Kernel::Vnni, Kernel::Vnni512] {
            assert_eq!(
                v,
                run(&w, kernel, &x, m),
                "AVX2 vs {:?} m={m} n={n} k={k}",
                kernel.effective()
            );
        }
        let scale = s.iter().fold(1f32, |a, b| a.max(b.abs()));
        for (a, b) in s.iter().zip(&v) {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "m={m} n={n} k={k}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn linear_runs_q4_1_on_hearth_kernel_for_any_leading_dims() {
    let mut rng = Rng(9);
    let t = Arc::new(weights(&mut rng, 40, 64));
    let lin = Linear::new(t.clone(), false).expect("linear");
    assert!(matches!(&lin, Linear::Quantized(m) if m.dtype() == GgmlDType::Q4_1));
    let x = Tensor::from_vec(rng.vec(6 * 64, 1.0), (2, 3, 64), &Device::Cpu).expect("x");
    let y = lin.forward(&x).expect("forward");
    assert_eq!(y.dims(), &[2, 3, 40]);
    let theirs = QMatMul::from_arc(t.clone())
        .expect("q")
        .forward(&x)
        .expect("fwd");
    let diff = (y - theirs)
        .expect("sub")
        .abs()
        .expect("abs")
        .max_all()
        .expect("max");
    assert!(diff.to_scalar::<f32>().expect("scalar") < 1e-4);
    // Wrong inner size and non-f32 inputs are errors, not panics.
    let bad = Tensor::zeros((2, 63), candle_core::DType::F32, &Device::Cpu).expect("bad");
    assert!(lin.forward(&bad).is_err());
    let f16x = Tensor::zeros((2, 64), candle_core::DType::F16, &Device::Cpu).expect("f16");
    assert!(lin.forward(&f16x).is_err());
    // Dequantize keeps candle's f32 path; other types keep candle's QMatMul.
    assert!(matches!(
        Linear::new(t, true).expect("deq"),
        Linear::Candle(QMatMul::Tensor(_))
    ));
}

/// A row's outputs are bit-identical whether it is multiplied alone or inside a batch
/// (the batch's tiles of 8 and 4 rows, and its single-row tail).
#[test]
fn outputs_do_not_depend_on_the_batch() {
    let mut rng = Rng(13);
    let (m, n, k) = (71, 21, 576);
    let w = Q4_1Matrix::from_qtensor(&weights(&mut rng, n, k)).expect("matrix");
    let x = rng.vec(m * k, 2.0);
    for kernel in kernels() {
        let all = run(&w, kernel, &x, m);
        for r in [0, 5, 63, 64, 70] {
            let one = run(&w, kernel, &x[r * k..(r + 1) * k], 1);
            assert_eq!(one, all[r * n..(r + 1) * n].to_vec(), "{kernel:?} row {r}");
        }
    }
}

/// Nibbles of 15 against activations of +-127 (the widest i16 partial sums of the AVX2
/// path): AVX2 and VNNI still agree bit for bit, and with the scalar path to rounding.
#[test]
fn extreme_values_agree_across_kernels() {
    // Two units: one pair for the 512-bit kernel.
    let (n, k) = (16, 64);
    let mut bytes = vec![0u8; n * k / QK * Q4_1_BLOCK_BYTES];
    for b in bytes.chunks_exact_mut(Q4_1_BLOCK_BYTES) {
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        b[4..].fill(0xFF);
    }
    let w = Q4_1Matrix::from_bytes(n, k, bytes).expect("matrix");
    let x: Vec<f32> = (0..2 * k).map(|i| if i < k { 3.0 } else { -3.0 }).collect();
    let outs: Vec<Vec<f32>> = kernels().into_iter().map(|kr| run(&w, kr, &x, 2)).collect();
    // 15 * 0.5 - 1 = 6.5 per weight, x = +-3 exactly representable: +-6.5 * 3 * 64.
    for out in &outs {
        for (i, v) in out.iter().enumerate() {
            let want = if i < n { 1248.0 } else { -1248.0 };
            assert!((v - want).abs() <= 1e-3 * 1248.0, "[{i}] {v} vs {want}");
        }
    }
    for kernel in [Kernel::Vnni, Kernel::Vnni512] {
        assert_eq!(run(&w, Kernel::Avx2, &x, 2), run(&w, kernel, &x, 2));
    }
}

/// `row` (the embedding lookup) gives the file's values: d * q + m, exactly.
#[test]
fn rows_dequantize_exactly() {
    let mut rng = Rng(17);
    let (n, k) = (11, 96);
    let t = weights(&mut rng, n, k);
    let w = Q4_1Matrix::from_qtensor(&t).expect("matrix");
    let want = dequant(&t);
    let mut row = vec![0f32; k];
    for i in 0..n {
        w.row(i, &mut row);
        for (j, v) in row.iter().enumerate() {
            let exact = want[i * k + j];
            assert!(
                (*v as f64 - exact).abs() <= 1e-6 * exact.abs().max(1e-3),
                "[{i},{j}]"
            );
        }
    }
}

#[test]
fn matrix_rejects_bad_sizes() {
    assert!(Q4_1Matrix::from_bytes(2, 33, vec![0; 80]).is_err());
    assert!(Q4_1Matrix::from_bytes(2, 64, vec![0; 79]).is_err());
    let w = Q4_1Matrix::from_bytes(2, 64, vec![0; 80]).expect("ok");
    assert!(w.matmul(&[0.0; 63], 1, &mut [0.0; 2]).is_err());
    assert!(w.matmul(&[0.0; 64], 1, &mut [0.0; 3]).is_err());
}
