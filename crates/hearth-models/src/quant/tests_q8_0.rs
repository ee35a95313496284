//! Q8_0 kernel vs an f64 reference, vs candle's `QMatMul`, and the paths vs each other.

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
    (8, 2048, 576), // LM head shape, fewer rows
    (2, 576, 1536),
    (5, 37, 576),
    (9, 16, 1536), // a tile of 4 and a tail
    (70, 16, 576), // more rows than one row tile
];

fn weights(rng: &mut Rng, n: usize, k: usize) -> QTensor {
    let t = Tensor::from_vec(rng.vec(n * k, 0.1), (n, k), &Device::Cpu).expect("tensor");
    QTensor::quantize(&t, GgmlDType::Q8_0).expect("quantize")
}

const KERNELS: [Kernel; 4] = [Kernel::Scalar, Kernel::Avx2, Kernel::Vnni, Kernel::Vnni512];

fn run(w: &Q8_0Matrix, kernel: Kernel, x: &[f32], m: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * w.n()];
    w.matmul_with(kernel, x, m, &mut y).expect("matmul");
    y
}

fn quantize(x: &[f32], k: usize) -> Vec<BlockQ8_0> {
    let mut a = vec![BlockQ8_0::ZERO; x.len() / QK];
    for (x, a) in x.chunks(k).zip(a.chunks_mut(k / QK)) {
        quantize_row_q8_0(x, a);
    }
    a
}

/// Per output: (the exact Q8_0 x Q8_0 product in f64, the sum of its terms' magnitudes).
fn reference(w: &[u8], a: &[BlockQ8_0], m: usize, n: usize, k: usize) -> Vec<(f64, f64)> {
    let kb = k / QK;
    let mut out = Vec::new();
    for r in 0..m {
        for i in 0..n {
            let (mut sum, mut mag) = (0f64, 0f64);
            for b in 0..kb {
                let wb = &w[(i * kb + b) * Q8_0_BLOCK_BYTES..][..Q8_0_BLOCK_BYTES];
                let d = f16::from_bits(u16::from_le_bytes([wb[0], wb[1]])).to_f64();
                let ab = &a[r * kb + b];
                for j in 0..QK {
                    let v = d * wb[2 + j] as i8 as f64 * ab.qs[j] as f64 * ab.d as f64;
                    sum += v;
                    mag += v.abs();
                }
            }
            out.push((sum, mag));
        }
    }
    out
}

/// Only f32 rounding separates the kernels from exact arithmetic on the same
/// quantized values: within 1e-5 of the terms' magnitude sum.
#[test]
fn q8_0_kernels_match_f64_reference() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for (m, n, k) in SHAPES {
        let t = weights(&mut rng, n, k);
        let w = Q8_0Matrix::from_qtensor(&t).expect("matrix");
        let x = rng.vec(m * k, 2.0);
        let want = reference(&t.data().expect("data"), &quantize(&x, k), m, n, k);
        for kernel in KERNELS {
            let got = run(&w, kernel, &x, m);
            for (idx, (&g, &(r, mag))) in got.iter().zip(&want).enumerate() {
                let err = (g as f64 - r).abs();
                assert!(
                    err <= 1e-5 * mag + 1e-6,
                    "{kernel:?} m={m} n={n} k={k} [{idx}]: {g} vs {r} (mag {mag})"
                );
            }
        }
    }
}

/// Our activation blocks are ggml's: same bytes as candle's Q8_0 quantizer.
#[test]
fn q8_0_activations_match_candle_quantizer() {
    let mut rng = Rng(13);
    let mut x = rng.vec(32 * 40, 5.0);
    x[0..32].fill(0.0);
    x[40] = -1e3;
    let t = Tensor::from_vec(x.clone(), x.len(), &Device::Cpu).expect("tensor");
    let theirs = QTensor::quantize(&t, GgmlDType::Q8_0).expect("quantize");
    let theirs = theirs.data().expect("data");
    for (b, c) in quantize(&x, x.len()).iter().zip(theirs.chunks_exact(34)) {
        let d = f16::from_f32(b.d).to_bits();
        assert_eq!(d, u16::from_le_bytes([c[0], c[1]]));
        assert!(b.qs.iter().zip(&c[2..]).all(|(&q, &r)| q as u8 == r));
    }
}

/// Against candle's `QMatMul` (its own quantizer and dot): within 1e-5 of the terms'
/// magnitude sum (the f32 summation order differs). Only where k is not a multiple of
/// 256: there candle repacks Q8_0 and quantizes activations to Q8_K instead (other
/// numerics); the LM head (k = 576) is such a shape.
#[test]
fn q8_0_kernels_match_candle_qmatmul() {
    let mut rng = Rng(17);
    for (m, n, k) in SHAPES.into_iter().filter(|s| s.2 % 256 != 0) {
        let t = weights(&mut rng, n, k);
        let w = Q8_0Matrix::from_qtensor(&t).expect("matrix");
        let x = rng.vec(m * k, 2.0);
        let want = reference(&t.data().expect("data"), &quantize(&x, k), m, n, k);
        let q = QMatMul::from_qtensor(t).expect("QMatMul");
        assert!(
            matches!(q, QMatMul::QTensor(_)),
            "candle must keep it quantized"
        );
        let xt = Tensor::from_slice(&x, (m, k), &Device::Cpu).expect("x");
        let theirs: Vec<f32> = q
            .forward(&xt)
            .and_then(|y| y.flatten_all()?.to_vec1())
            .expect("candle forward");
        for kernel in KERNELS {
            let ours = run(&w, kernel, &x, m);
            for ((a, b), (_, mag)) in ours.iter().zip(&theirs).zip(&want) {
                let rel = (a - b).abs() as f64 / mag.max(1e-9);
                assert!(rel < 1e-5, "{kernel:?} m={m} n={n} k={k}: {a} vs {b}");
            }
        }
    }
}

/// Integer sums are exact in every SIMD path, and they share the float steps: the
/// AVX2, VNNI and 512-bit VNNI results are bit-identical, including weights of -128 (raw bytes
/// that ggml's quantizer never writes, but a file may hold).
#[test]
fn q8_0_avx2_and_vnni_agree_exactly() {
    let mut rng = Rng(19);
    let (n, k, m) = (24, 576, 9);
    let mut data = Vec::new();
    for b in 0..n * k / QK {
        data.extend(f16::from_f32(0.01 + b as f32 * 1e-4).to_le_bytes());
        data.extend((0..QK).map(|j| match (b + j) % 7 {
            0 => 0x80u8,
            1 => 0x7F,
            _ => (rng.next() * 127.0) as i8 as u8,
        }));
    }
    let w = Q8_0Matrix::from_bytes(n, k, data).expect("matrix");
    let x = rng.vec(m * k, 3.0);
    let (s, a, v) = (
        run(&w, Kernel::Scalar, &x, m),
        run(&w, Kernel::Avx2, &x, m),
        run(&w, Kernel::Vnni, &x, m),
    );
    assert_eq!(a, v, "AVX2 vs VNNI");
    // 24 rows: one pair of units and a lone one for the 512-bit kernel.
    assert_eq!(a, run(&w, Kernel::Vnni512, &x, m), "AVX2 vs 512-bit VNNI");
    let scale = s.iter().fold(1f32, |acc, y| acc.max(y.abs()));
    assert!(s.iter().zip(&a).all(|(p, q)| (p - q).abs() <= 1e-5 * scale));
    eprintln!("most capable kernel here: {:?}", Kernel::detect());
}

#[test]
fn linear_runs_q8_0_on_hearth_kernel() {
    let mut rng = Rng(23);
    let t = Arc::new(weights(&mut rng, 40, 64));
    let lin = Linear::new(t.clone(), false).expect("linear");
    assert!(matches!(&lin, Linear::Quantized(m) if m.dtype() == GgmlDType::Q8_0));
    let x = Tensor::from_vec(rng.vec(6 * 64, 1.0), (2, 3, 64), &Device::Cpu).expect("x");
    let y = lin.forward(&x).expect("forward");
    assert_eq!(y.dims(), &[2, 3, 40]);
    let theirs = QMatMul::from_arc(t).expect("q").forward(&x).expect("fwd");
    let diff = (y - theirs).and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>());
    assert!(diff.expect("diff") < 1e-4);
    let bad = Tensor::zeros((2, 63), candle_core::DType::F32, &Device::Cpu).expect("bad");
    assert!(lin.forward(&bad).is_err());
    assert!(Q8_0Matrix::from_bytes(2, 33, vec![0; 136]).is_err());
    assert!(Q8_0Matrix::from_bytes(2, 64, vec![0; 135]).is_err());
}

/// The vectorised quantizers round half away from zero, as `roundf`: exact ties
/// (x / d = k + 0.5), the largest float below a tie, negatives, zero blocks.
#[test]
fn quantizers_match_scalar_rounding_on_ties() {
    let mut x = vec![127.0f32; 32 * 4]; // amax 127: d = 1, x / d = x
    for (i, v) in x.iter_mut().enumerate().skip(1).take(31) {
        *v = (i as f32 - 16.0) + 0.5; // ties, both signs
    }
    for (i, v) in x[33..64].iter_mut().enumerate() {
        *v = f32::from_bits(((i as f32 - 15.0) + 0.5).to_bits() - 1); // just off a tie
    }
    x[64..96].fill(0.0);
    let mut rng = Rng(29);
    x.extend(rng.vec(32 * 64, 7.0));
    let mut q0 = vec![BlockQ8_0::ZERO; x.len() / QK];
    let mut q1 = vec![BlockQ8_1::ZERO; x.len() / QK];
    quantize_row_q8_0(&x, &mut q0);
    quantize_row_q8_1(&x, &mut q1);
    for (b, xs) in x.chunks_exact(QK).enumerate() {
        let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let want: Vec<i8> = xs.iter().map(|v| (v * id).round() as i8).collect();
        assert_eq!(q0[b].qs.to_vec(), want, "Q8_0 block {b}");
        assert_eq!(q1[b].qs.to_vec(), want, "Q8_1 block {b}");
        assert_eq!(q0[b].d, f16::from_f32(d).to_f32());
        assert_eq!(q1[b].d, f16::from_f32(d).to_f32());
        let sum: i32 = want.iter().map(|&q| q as i32).sum();
        assert_eq!(
            q1[b].s,
            (f16::from_f32(sum as f32) * f16::from_f32(d)).to_f32()
        );
    }
}

/// A row's outputs are bit-identical whether it is multiplied alone or inside a batch,
/// on every kernel this CPU has; 13 rows leave a padded last unit.
#[test]
fn q8_0_outputs_do_not_depend_on_the_batch() {
    let mut rng = Rng(31);
    let (m, n, k) = (69, 13, 576);
    let w = Q8_0Matrix::from_qtensor(&weights(&mut rng, n, k)).expect("matrix");
    let x = rng.vec(m * k, 2.0);
    for kernel in KERNELS.into_iter().filter(|k| k.is_available()) {
        let all = run(&w, kernel, &x, m);
        for r in [0, 3, 64, 68] {
            let one = run(&w, kernel, &x[r * k..(r + 1) * k], 1);
            assert_eq!(one, all[r * n..(r + 1) * n].to_vec(), "{kernel:?} row {r}");
        }
    }
}

/// `row` (the token-embedding lookup) gives the file's values, d * q, for every row of
/// a matrix whose last unit is padded.
#[test]
fn q8_0_rows_dequantize_exactly() {
    let mut rng = Rng(37);
    let (n, k) = (11, 64);
    let t = weights(&mut rng, n, k);
    let bytes = t.data().expect("data").into_owned();
    let w = Q8_0Matrix::from_qtensor(&t).expect("matrix");
    let mut row = vec![0f32; k];
    for i in 0..n {
        w.row(i, &mut row);
        for (j, v) in row.iter().enumerate() {
            let b = &bytes[(i * k + j) / QK * Q8_0_BLOCK_BYTES..];
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            assert_eq!(*v, d * f32::from(b[2 + j % QK] as i8), "[{i},{j}]");
        }
    }
}
