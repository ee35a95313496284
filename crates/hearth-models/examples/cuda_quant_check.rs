//! Checks and times the GPU's products over GGUF block-quantized weights
//! (`kernels/gemv_quant.cu`) for every type it has kernels for. Run on a GPU machine:
//!   cargo build --release -p hearth-models --features cuda --example cuda_quant_check
//! Per type, a random matrix is quantized by candle on the CPU, and its CPU
//! dequantization is the reference:
//! - rows dequantized on the GPU (the embedding lookup) must equal the CPU's bit for bit;
//! - products for 1 to 72 tokens (1-8: the quantized kernels, which quantize the
//!   activations to int16 in groups of 16; more: dequantized tiles and cuBLAS; with bf16
//!   activations, 2 to 64 tokens of Q4_1 and Q4_K: the tensor-core products), f32
//!   and bf16 activations, into a strided output, plain and accumulating,
//!   against an f64 product of the dequantized weights (outputs poisoned with NaN first);
//! - the fused SiLU·up product against f64 (up to `MMQ_MAX_TOKENS` where the tensor-core
//!   products serve it).
//!
//! Bounds: int16 activations (a step of max/32767 in each group of 16) cost ~2e-5 of a
//! product of random inputs, so 1e-4 for the quantized kernels (int8 activations,
//! `HEARTH_CUDA_QACT=8`: ~0.4%, so 1.5e-2); the tiles are exact in
//! f32 (1e-5) and bf16-rounded in bf16 (1e-2); the tensor-core products multiply the
//! exact quants by the bf16 activations with f32 sums (~1e-6, held to 1e-4); the SiLU
//! product rounds its output to bf16 with bf16 activations (1e-2). A wrong block layout
//! is off by O(1).
//!
//! Then each type's products on a Llama-3.2-3B step's shapes are timed (30 launches
//! back to back, rotating over copies so that L2 serves none; median of 5).
//! Exits non-zero when a result is off.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use hearth_models::cuda::llama::{bf16_bits, upload_quant};
use hearth_models::cuda::product::{
    dequant_rows, Products, WeightRef, MMQ_MAX_TOKENS, MMQ_PLAIN_MAX_TOKENS,
};
use hearth_models::cuda::Gpu;

#[path = "check_util/mod.rs"]
mod check_util;
use check_util::{dptr, median, xorshift};

/// Types with tensor-core products (`kernels/mmq.cu`): exact weights and bf16
/// activations, so their bf16 steps that take them are held to the quantized kernels'
/// bound.
const MMQ_TYPES: [GgmlDType; 2] = [GgmlDType::Q4_1, GgmlDType::Q4K];

const TYPES: [GgmlDType; 5] = [
    GgmlDType::Q8_0,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q4K,
    GgmlDType::Q6K,
];

/// A random `[rows, cols]` matrix quantized to `ty`, and its CPU dequantization.
fn quantized(ty: GgmlDType, rows: usize, cols: usize, seed: u64) -> (QTensor, Vec<f32>) {
    let mut r = xorshift(seed);
    let host: Vec<f32> = (0..rows * cols).map(|_| r() * 0.05).collect();
    let t = Tensor::from_vec(host, (rows, cols), &Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, ty).expect("quantize");
    let d = q
        .dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("dequantize");
    (q, d)
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let (mut n, mut d) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        let e = *g as f64 - w;
        n += if e.is_nan() { f64::INFINITY } else { e * e };
        d += w * w;
    }
    (n / d.max(1e-30)).sqrt()
}

struct Case<'a> {
    gpu: &'a Gpu,
    w: WeightRef,
    deq: &'a [f32],
}

impl Case<'_> {
    /// One product of `t` tokens into a y whose rows are `ldy = rows + 5` apart; returns
    /// the relative error against f64 (every output written, the gaps untouched).
    fn product(
        &self,
        act_bf16: bool,
        t: usize,
        accumulate: bool,
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let (gpu, w) = (self.gpu, self.w);
        let st = &gpu.stream;
        let mut products = Products::new(gpu, act_bf16)?;
        products.reserve_dequant(gpu)?;
        let mut r = xorshift(11 + t as u64);
        let xs: Vec<f32> = (0..t * w.cols).map(|_| r()).collect();
        // The activations as the GPU holds them.
        let (x_dev_f32, x_dev_bf16);
        let (x_ptr, x_used): (u64, Vec<f64>) = if act_bf16 {
            let bits: Vec<u16> = xs.iter().map(|&v| bf16_bits(v)).collect();
            let used = bits
                .iter()
                .map(|&b| f32::from_bits((b as u32) << 16) as f64)
                .collect();
            x_dev_bf16 = st.memcpy_stod(&bits)?;
            (dptr(&x_dev_bf16, st), used)
        } else {
            x_dev_f32 = st.memcpy_stod(&xs)?;
            (dptr(&x_dev_f32, st), xs.iter().map(|&v| v as f64).collect())
        };
        let ldy = w.rows + 5;
        let y0: Vec<f32> = (0..t * ldy)
            .map(|i| {
                if i % ldy >= w.rows {
                    7.0
                } else if accumulate {
                    r()
                } else {
                    f32::NAN
                }
            })
            .collect();
        let y = st.memcpy_stod(&y0)?;
        // Safety: x holds t * cols, y t * ldy, w its rows.
        unsafe { products.matmul(gpu, x_ptr, w, dptr(&y, st), ldy, t, accumulate)? };
        let got = st.memcpy_dtov(&y)?;
        let mut want = Vec::with_capacity(t * w.rows);
        let mut got_rows = Vec::with_capacity(t * w.rows);
        for tok in 0..t {
            let xr = &x_used[tok * w.cols..(tok + 1) * w.cols];
            for row in 0..w.rows {
                let wr = &self.deq[row * w.cols..(row + 1) * w.cols];
                let dot: f64 = wr.iter().zip(xr).map(|(&a, b)| a as f64 * b).sum();
                want.push(
                    dot + if accumulate {
                        y0[tok * ldy + row] as f64
                    } else {
                        0.0
                    },
                );
                got_rows.push(got[tok * ldy + row]);
            }
            if got[tok * ldy + w.rows..(tok + 1) * ldy]
                .iter()
                .any(|&v| v != 7.0)
            {
                return Ok(f64::INFINITY);
            }
        }
        Ok(rel_err(&got_rows, &want))
    }

    /// The fused gate/up product: act = SiLU(x · gateᵀ) * (x · upᵀ), w = [gate | up].
    fn silu(&self, act_bf16: bool, t: usize) -> Result<f64, Box<dyn std::error::Error>> {
        let (gpu, w) = (self.gpu, self.w);
        let st = &gpu.stream;
        let products = Products::new(gpu, act_bf16)?;
        let ffn = w.rows / 2;
        let mut r = xorshift(23 + t as u64);
        let xs: Vec<f32> = (0..t * w.cols).map(|_| r()).collect();
        let bits: Vec<u16> = xs.iter().map(|&v| bf16_bits(v)).collect();
        let x_used: Vec<f64> = if act_bf16 {
            bits.iter()
                .map(|&b| f32::from_bits((b as u32) << 16) as f64)
                .collect()
        } else {
            xs.iter().map(|&v| v as f64).collect()
        };
        let xd_bf16 = st.memcpy_stod(&bits)?;
        let xd_f32 = st.memcpy_stod(&xs)?;
        let x_ptr = if act_bf16 {
            dptr(&xd_bf16, st)
        } else {
            dptr(&xd_f32, st)
        };
        let act = st.memcpy_stod(&vec![f32::NAN; t * ffn])?;
        // Safety: x holds t * cols, act t * ffn f32 (room for bf16 too).
        let served = unsafe { products.matmul_silu(gpu, x_ptr, w, dptr(&act, st), t)? };
        if !served {
            return Err(format!("fused SiLU product not served at t = {t}").into());
        }
        let got: Vec<f32> = if act_bf16 {
            let raw = st.memcpy_dtov(&act)?;
            let halves: Vec<u16> = raw
                .iter()
                .flat_map(|v| {
                    let b = v.to_bits();
                    [b as u16, (b >> 16) as u16]
                })
                .collect();
            halves[..t * ffn]
                .iter()
                .map(|&b| f32::from_bits((b as u32) << 16))
                .collect()
        } else {
            st.memcpy_dtov(&act)?
        };
        let mut want = Vec::new();
        for tok in 0..t {
            let xr = &x_used[tok * w.cols..(tok + 1) * w.cols];
            let dot = |row: usize| -> f64 {
                let wr = &self.deq[row * w.cols..(row + 1) * w.cols];
                wr.iter().zip(xr).map(|(&a, b)| a as f64 * b).sum()
            };
            for p in 0..ffn {
                let (g, u) = (dot(p), dot(ffn + p));
                want.push(g / (1.0 + (-g).exp()) * u);
            }
        }
        Ok(rel_err(&got, &want))
    }
}

/// Timing of one type on the 3B's shapes: µs a product (t = 16: dequantized tiles and
/// cuBLAS).
fn time_type(gpu: &Gpu, ty: GgmlDType) -> Result<(), Box<dyn std::error::Error>> {
    let st = &gpu.stream;
    let mut products = Products::new(gpu, true)?;
    products.reserve_dequant(gpu)?;
    let shapes = [
        ("q|k|v", 5120, 3072),
        ("o", 3072, 3072),
        ("gate|up", 16384, 3072),
        ("down", 3072, 8192),
    ];
    let mut r = xorshift(5);
    let xs: Vec<u16> = (0..64 * 8192).map(|_| bf16_bits(r())).collect();
    let x = st.memcpy_stod(&xs)?;
    let y = st.alloc_zeros::<f32>(64 * 16384)?;
    let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    for (name, rows, cols) in shapes {
        // 64 quantized rows repeated: rows are independent, and quantizing 50M random
        // weights on one CPU thread takes long.
        let (small, _) = quantized(ty, 64, cols, 3);
        let bytes = small.data()?;
        let big: Vec<u8> = (0..rows / 64).flat_map(|_| bytes.iter().copied()).collect();
        let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
            ty,
            &big,
            vec![rows, cols],
            &Device::Cpu,
        )?;
        // Copies enough to pass L2 (50 MB) several times over.
        let copies = (256 << 20) / q.storage_size_in_bytes() + 2;
        let mut held = Vec::new();
        for _ in 0..copies {
            held.push(upload_quant(gpu, &q)?.ok_or("no GPU kernels")?);
        }
        let mut line = format!("{:<5} {name:<8}", format!("{ty:?}"));
        for t in [1usize, 2, 4, 8, 16, 32, 64] {
            let mut runs = Vec::new();
            for _ in 0..5 {
                let start = st.record_event(timing)?;
                for k in 0..30 {
                    // Safety: x holds 64 * 8192 bf16, y 64 * 16384 f32.
                    unsafe {
                        products.matmul(
                            gpu,
                            dptr(&x, st),
                            held[k % copies].1,
                            dptr(&y, st),
                            rows,
                            t,
                            false,
                        )?
                    };
                }
                let end = st.record_event(timing)?;
                end.synchronize()?;
                runs.push(start.elapsed_ms(&end)? as f64 * 1e3 / 30.0);
            }
            let us = median(runs);
            line += &format!("  t={t}: {us:6.1} µs");
        }
        println!("{line}");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = Gpu::new(0)?;
    let st = gpu.stream.clone();
    let mut failed = false;
    let (rows, cols) = (384, 1024);
    let qbound = if gpu.qact_bits == 8 { 1.5e-2 } else { 1e-4 };
    // The tensor-core products serve unless turned off (as product.rs reads it).
    let mmq_on = std::env::var("HEARTH_CUDA_MMQ").as_deref() != Ok("0");
    println!(
        "activations of the quantized products: int{}",
        gpu.qact_bits
    );
    for ty in TYPES {
        let (q, deq) = quantized(ty, rows, cols, 1 + ty as u64);
        let (_held, w) = upload_quant(&gpu, &q)?.ok_or("no GPU kernels")?;
        // Rows by id, as the embedding lookup.
        let ids: Vec<i32> = vec![5, 0, 383, 17, 200];
        let ids_dev = st.memcpy_stod(&ids)?;
        let out = st.memcpy_stod(&vec![f32::NAN; ids.len() * cols])?;
        // Safety: ids are below rows; out holds 5 * cols.
        unsafe { dequant_rows(&gpu, w, dptr(&ids_dev, &st), ids.len(), dptr(&out, &st))? };
        let got = st.memcpy_dtov(&out)?;
        let mismatched = ids
            .iter()
            .enumerate()
            .flat_map(|(i, &id)| (0..cols).map(move |c| (i, id as usize, c)))
            .filter(|&(i, id, c)| got[i * cols + c].to_bits() != deq[id * cols + c].to_bits())
            .count();
        println!("{ty:?}: rows dequantized on the GPU: {mismatched} of {} values differ from the CPU's bits", ids.len() * cols);
        failed |= mismatched > 0;
        let case = Case {
            gpu: &gpu,
            w,
            deq: &deq,
        };
        for act_bf16 in [false, true] {
            let mut line = format!(
                "{ty:?} {} activations:",
                if act_bf16 { "bf16" } else { "f32 " }
            );
            for (t, acc) in [
                (1, false),
                (2, false),
                (5, false),
                (8, true),
                (16, false),
                (40, true),
                (72, false),
            ] {
                let e = case.product(act_bf16, t, acc)?;
                // 1024 columns: 16 tokens a block fit, so plain products go to 64.
                let mmq =
                    mmq_on && act_bf16 && MMQ_TYPES.contains(&ty) && t <= MMQ_PLAIN_MAX_TOKENS[1];
                let bound = match (t > 8, act_bf16) {
                    (false, _) => qbound,
                    (true, true) if mmq => qbound,
                    (true, true) => 1e-2,
                    (true, false) => 1e-5,
                };
                failed |= e.is_nan() || e > bound;
                line += &format!(" t={t}{} {e:.1e}", if acc { "+acc" } else { "" });
            }
            for t in [1, 3, 20, MMQ_MAX_TOKENS] {
                // Past 8 tokens only the tensor-core products fuse SiLU·up.
                if t > 8 && !(mmq_on && act_bf16 && MMQ_TYPES.contains(&ty)) {
                    continue;
                }
                let e = case.silu(act_bf16, t)?;
                let bound = if act_bf16 {
                    1e-2f64.max(qbound)
                } else {
                    qbound
                };
                failed |= e.is_nan() || e > bound;
                line += &format!(" silu t={t} {e:.1e}");
            }
            println!("{line}");
        }
    }
    println!("timing (bf16 activations), µs a product:");
    for ty in TYPES {
        time_type(&gpu, ty)?;
    }
    if failed {
        return Err("a quantized product is off".into());
    }
    println!("all quantized products within bounds");
    Ok(())
}
