//! A/B of the SIMD paths (AVX2, VNNI, 512-bit VNNI) on one matrix (1536 x 576, Q4_1
//! and Q8_0), interleaved so load from other processes hits all alike; best of 200
//! rounds of 10 calls, made from a pool thread as the model's step makes them (called
//! from outside, each call also paid for waking the pool: 38 against 22 µs), e.g.
//! `RAYON_NUM_THREADS=1 cargo run --release -p hearth-models --example kernel_ab`.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use hearth_models::quant::{Kernel, Q4_1Matrix, Q8_0Matrix};
use std::time::Instant;
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
fn main() {
    let (n, k) = (1536, 576);
    let w = Tensor::from_vec(data(n * k, 1), (n, k), &Device::Cpu).expect("setup");
    let q4 = Q4_1Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q4_1).expect("setup"))
        .expect("setup");
    let q8 = Q8_0Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).expect("setup"))
        .expect("setup");
    rayon::scope(|_| compare(&q4, &q8, k));
}

fn compare(q4: &Q4_1Matrix, q8: &Q8_0Matrix, k: usize) {
    let n = q4.n();
    for m in [1usize, 8] {
        let x = data(m * k, 2);
        let mut y = vec![0f32; m * n];
        let mut best = [[f64::MAX; 3]; 2];
        for _ in 0..200 {
            for (ki, kern) in [Kernel::Avx2, Kernel::Vnni, Kernel::Vnni512]
                .into_iter()
                .enumerate()
            {
                let t = Instant::now();
                for _ in 0..10 {
                    q4.matmul_with(kern, &x, m, &mut y).expect("setup");
                }
                best[0][ki] = best[0][ki].min(t.elapsed().as_secs_f64() * 1e5);
                let t = Instant::now();
                for _ in 0..10 {
                    q8.matmul_with(kern, &x, m, &mut y).expect("setup");
                }
                best[1][ki] = best[1][ki].min(t.elapsed().as_secs_f64() * 1e5);
            }
        }
        println!(
            "m={m} q4_1 avx2 {:.1}us vnni {:.1}us vnni512 {:.1}us | q8_0 avx2 {:.1}us vnni {:.1}us vnni512 {:.1}us",
            best[0][0], best[0][1], best[0][2], best[1][0], best[1][1], best[1][2]
        );
    }
}
