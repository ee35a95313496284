//! Quantized matmul, y[m, n] = x[m, k] · Wᵀ: hearth's kernels (each SIMD path) vs
//! candle's `QMatMul`, at SmolLM2-135M's shapes: Q4_1 layers (hidden 576, ffn 1536)
//! and the Q8_0 tied LM head (vocab 49152); and Q4_K and Q6_K (Q4_K_M files hold both) at
//! Llama-3.2-3B's shapes (hidden 3072, ffn 8192): the repacked kernel, the per-pair path
//! (the file's blocks, candle's `vec_dot` per weight row x activation row), and candle.
//! `cargo bench -p hearth-models --bench qmatmul -- q6_k` runs one group. Each call is
//! timed from a pool thread (`common/pooled.rs`), as the model's step makes it.

#[path = "common/pooled.rs"]
mod pooled;

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use hearth_models::quant::{
    BlockMatrix, Kernel, Q4KMatrix, Q4_1Matrix, Q6KMatrix, Q8_0Matrix, RowMatrix,
};
use std::time::Duration;

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    eprintln!("hearth kernel: {:?}", Kernel::detect());
    let mut g = c.benchmark_group("q4_1_matmul");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (n, k) in [(1536, 576), (576, 1536)] {
        let w = Tensor::from_vec(data(n * k, 1), (n, k), &Device::Cpu).expect("w");
        let qt = QTensor::quantize(&w, GgmlDType::Q4_1).expect("quantize");
        let ours = Q4_1Matrix::from_qtensor(&qt).expect("matrix");
        let theirs = QMatMul::from_qtensor(qt).expect("qmatmul");
        for m in [1, 8, 64] {
            let x = data(m * k, 2);
            let xt = Tensor::from_slice(&x, (m, k), &Device::Cpu).expect("x");
            let mut y = vec![0f32; m * n];
            let id = format!("m{m}_n{n}_k{k}");
            for kernel in kernels() {
                let name = format!("hearth_{kernel:?}");
                g.bench_function(BenchmarkId::new(name, &id), |b| {
                    pooled::iter_in_pool(b, || {
                        let x = black_box(&x);
                        ours.matmul_with(kernel, x, m, &mut y).expect("matmul")
                    })
                });
            }
            g.bench_function(BenchmarkId::new("candle", &id), |b| {
                pooled::iter_in_pool(b, || theirs.forward(black_box(&xt)).expect("forward"))
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("q8_0_matmul");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let (n, k) = (49152, 576);
    let w = Tensor::from_vec(data(n * k, 3), (n, k), &Device::Cpu).expect("w");
    let qt = QTensor::quantize(&w, GgmlDType::Q8_0).expect("quantize");
    let ours = Q8_0Matrix::from_qtensor(&qt).expect("matrix");
    let theirs = QMatMul::from_qtensor(qt).expect("qmatmul");
    for m in [1, 8] {
        let x = data(m * k, 4);
        let xt = Tensor::from_slice(&x, (m, k), &Device::Cpu).expect("x");
        let mut y = vec![0f32; m * n];
        let id = format!("m{m}_n{n}_k{k}");
        for kernel in kernels() {
            let name = format!("hearth_{kernel:?}");
            g.bench_function(BenchmarkId::new(name, &id), |b| {
                pooled::iter_in_pool(b, || {
                    let x = black_box(&x);
                    ours.matmul_with(kernel, x, m, &mut y).expect("matmul")
                })
            });
        }
        g.bench_function(BenchmarkId::new("candle", &id), |b| {
            pooled::iter_in_pool(b, || theirs.forward(black_box(&xt)).expect("forward"))
        });
    }
    g.finish();
    bench_q4_k(c);
}

fn bench_q4_k(c: &mut Criterion) {
    bench_k_quant(
        c,
        "q4_k_matmul",
        GgmlDType::Q4K,
        |qt| {
            let held = Q4KMatrix::from_qtensor(qt).expect("repacked");
            Box::new(move |kernel: Kernel, x: &[f32], m: usize, y: &mut [f32]| {
                held.matmul_with(kernel, x, m, y).expect("matmul")
            }) as Runner
        },
        |qt| Box::new(BlockMatrix::<BlockQ4K>::from_qtensor(qt).expect("per pair")),
    );
    bench_k_quant(
        c,
        "q6_k_matmul",
        GgmlDType::Q6K,
        |qt| {
            let held = Q6KMatrix::from_qtensor(qt).expect("repacked");
            Box::new(move |kernel: Kernel, x: &[f32], m: usize, y: &mut [f32]| {
                held.matmul_with(kernel, x, m, y).expect("matmul")
            }) as Runner
        },
        |qt| Box::new(BlockMatrix::<BlockQ6K>::from_qtensor(qt).expect("per pair")),
    );
}

/// A repacked matrix's matmul with a chosen kernel.
type Runner = Box<dyn Fn(Kernel, &[f32], usize, &mut [f32]) + Sync>;

/// One k-quant at Llama-3.2-3B's shapes: `repacked` builds hearth's matrix, `per_pair`
/// holds the file's blocks.
fn bench_k_quant(
    c: &mut Criterion,
    group: &str,
    dtype: GgmlDType,
    repacked: fn(&QTensor) -> Runner,
    per_pair: fn(&QTensor) -> Box<dyn RowMatrix>,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (n, k) in [(3072, 3072), (8192, 3072)] {
        let w = Tensor::from_vec(data(n * k, 5), (n, k), &Device::Cpu).expect("w");
        let qt = QTensor::quantize(&w, dtype).expect("quantize");
        let ours = repacked(&qt);
        let pairs = per_pair(&qt);
        let theirs = QMatMul::from_qtensor(qt).expect("qmatmul");
        for m in [1, 8, 64] {
            let x = data(m * k, 6);
            let xt = Tensor::from_slice(&x, (m, k), &Device::Cpu).expect("x");
            let mut y = vec![0f32; m * n];
            let id = format!("m{m}_n{n}_k{k}");
            for kernel in kernels() {
                let name = format!("repacked_{kernel:?}");
                g.bench_function(BenchmarkId::new(name, &id), |b| {
                    pooled::iter_in_pool(b, || ours(kernel, black_box(&x), m, &mut y))
                });
            }
            g.bench_function(BenchmarkId::new("per_pair", &id), |b| {
                pooled::iter_in_pool(b, || {
                    pairs.matmul(black_box(&x), m, &mut y).expect("matmul")
                })
            });
            g.bench_function(BenchmarkId::new("candle", &id), |b| {
                pooled::iter_in_pool(b, || theirs.forward(black_box(&xt)).expect("forward"))
            });
        }
    }
    g.finish();
}

/// The SIMD paths this CPU has (the scalar one is too slow to be worth timing).
fn kernels() -> Vec<Kernel> {
    [Kernel::Avx2, Kernel::Vnni, Kernel::Vnni512]
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
