//! Checks and times hearth's GEMV kernel against cuBLAS on the matrix shapes of a
//! Llama-3.2-3B decode step (bf16 weights, the token counts it serves). Run on a machine with a GPU:
//!   cargo build --release -p hearth-models --features cuda --example cuda_gemv_check
//! Both are checked against an f64 product on the CPU (sampled rows), outputs poisoned
//! with NaN first; timings are medians of CUDA-event-timed launches, each launch on
//! other weights of one large random buffer (so that no matrix is served from L2), and
//! per-launch means of 30 launches back to back, with and without programmatic
//! dependent launch.
//! Exits non-zero when a result is off.

use hearth_models::cuda::llama::bf16_bits;
use hearth_models::cuda::product::{Products, WeightKind, WeightRef, GEMV_MAX_TOKENS};
use hearth_models::cuda::Gpu;
use rayon::prelude::*;

#[path = "check_util/mod.rs"]
mod check_util;
use check_util::{dptr, median, xorshift};

fn bf16_f32(b: u16) -> f64 {
    f32::from_bits((b as u32) << 16) as f64
}

const SHAPES: [(&str, usize, usize); 5] = [
    ("q|k|v", 5120, 3072),
    ("o", 3072, 3072),
    ("gate|up", 16384, 3072),
    ("down", 3072, 8192),
    ("lm_head", 128_256, 3072),
];
const SAMPLED_ROWS: usize = 64;

/// The fused gate/up product (`Products::matmul_silu`, bf16 SiLU(gate) * up) against
/// f64 on sampled outputs, poisoned first; also timed against the plain product.
/// Returns the relative error.
fn check_silu(
    gpu: &Gpu,
    products: &Products,
    host_w: &[u16],
    host_x: &[u16],
    x_ptr: u64,
    w: WeightRef,
) -> Result<f64, Box<dyn std::error::Error>> {
    let st = &gpu.stream;
    let (ffn, cols) = (w.rows / 2, w.cols);
    let mut worst = 0f64;
    for t in 1..=GEMV_MAX_TOKENS {
        let act = st.memcpy_stod(&vec![0x7fc0u16; t * ffn])?;
        let act_ptr = dptr(&act, st);
        // Safety: x holds t * cols bf16, act t * ffn, w rows * cols.
        let served = unsafe { products.matmul_silu(gpu, x_ptr, w, act_ptr, t)? };
        if !served {
            return Err("the fused SiLU product did not serve a bf16 step".into());
        }
        let got = st.memcpy_dtov(&act)?;
        let (mut num, mut den) = (0f64, 0f64);
        for tok in 0..t {
            let xr = &host_x[tok * cols..(tok + 1) * cols];
            for i in 0..SAMPLED_ROWS {
                let p = i * (ffn - 1) / (SAMPLED_ROWS - 1);
                let dot = |row: usize| -> f64 {
                    host_w[row * cols..(row + 1) * cols]
                        .iter()
                        .zip(xr)
                        .map(|(&a, &b)| bf16_f32(a) * bf16_f32(b))
                        .sum()
                };
                let (g, u) = (dot(p), dot(ffn + p));
                let want = g / (1.0 + (-g).exp()) * u;
                let d = bf16_f32(got[tok * ffn + p]) - want;
                num += if d.is_nan() { f64::INFINITY } else { d * d };
                den += want * want;
            }
        }
        if got.contains(&0x7fc0) {
            num = f64::INFINITY;
        }
        let err = (num / den.max(1e-30)).sqrt();
        worst = worst.max(err);
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = st.record_event(timing)?;
        for _ in 0..30 {
            // Safety: as above.
            unsafe { products.matmul_silu(gpu, x_ptr, w, act_ptr, t)? };
        }
        let end = st.record_event(timing)?;
        end.synchronize()?;
        let us = start.elapsed_ms(&end)? as f64 * 1e3 / 30.0;
        println!("gate|up   t = {t}, fused SiLU: rel err {err:.2e} (bf16 out), {us:.1} µs each (30 back to back, same weights)");
        drop(act);
    }
    Ok(worst)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = Gpu::new(0)?;
    let mut products = Products::new(&gpu, true)?;
    let st = gpu.stream.clone();
    let total = SHAPES.iter().map(|s| s.1 * s.2).max().unwrap_or(0);
    let host_w: Vec<u16> = (0..total)
        .into_par_iter()
        .chunks(1 << 20)
        .flat_map_iter(|c| {
            let mut r = xorshift(c[0] as u64 * 0x9E37_79B9 + 1);
            c.into_iter().map(move |_| bf16_bits(r()))
        })
        .collect();
    let w = st.memcpy_stod(&host_w)?;
    let w_base = dptr(&w, &st);
    let max_cols = SHAPES.iter().map(|s| s.2).max().unwrap_or(0);
    let mut r = xorshift(7);
    let host_x: Vec<u16> = (0..8 * max_cols).map(|_| bf16_bits(r())).collect();
    let x = st.memcpy_stod(&host_x)?;
    let x_ptr = dptr(&x, &st);
    let max_rows = SHAPES.iter().map(|s| s.1).max().unwrap_or(0);
    let mut y = st.alloc_zeros::<f32>(8 * max_rows)?;
    let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    let mut worst = 0f64;
    let mut silu_worst = 0f64;
    println!(
        "{:<9} {:>2}  {:>10} {:>10}  {:>8} {:>8}  {:>9} {:>9}  {:>6}",
        "matrix",
        "t",
        "gemv err",
        "cuBLAS err",
        "gemv µs",
        "cuBLAS µs",
        "gemv GB/s",
        "cuBLAS GB/s",
        "ratio"
    );
    for (name, rows, cols) in SHAPES {
        let size = rows * cols;
        let copies = (total / size).max(1);
        let wref = |k: usize| WeightRef {
            ptr: w_base + 2 * (k % copies * size) as u64,
            rows,
            cols,
            kind: WeightKind::Bf16,
        };
        // f64 reference for sampled rows of copy 0.
        let sample: Vec<usize> = (0..SAMPLED_ROWS)
            .map(|i| i * (rows - 1) / (SAMPLED_ROWS - 1))
            .collect();
        let reference = |t: usize| -> Vec<f64> {
            let mut out = Vec::new();
            for tok in 0..t {
                for &row in &sample {
                    let wr = &host_w[row * cols..(row + 1) * cols];
                    let xr = &host_x[tok * cols..(tok + 1) * cols];
                    out.push(
                        wr.iter()
                            .zip(xr)
                            .map(|(&a, &b)| bf16_f32(a) * bf16_f32(b))
                            .sum(),
                    );
                }
            }
            out
        };
        for t in 1..=GEMV_MAX_TOKENS {
            let want = reference(t);
            let mut errs = [0f64; 2];
            let mut times = [0f64; 2];
            for (i, gemv) in [true, false].into_iter().enumerate() {
                products.set_gemv(gemv);
                st.memcpy_htod(&vec![f32::NAN; t * rows], &mut y.slice_mut(..t * rows))?;
                let y_ptr = dptr(&y, &st);
                // Safety: x holds 8 * max_cols bf16, y 8 * max_rows f32, w `total` bf16.
                unsafe { products.matmul(&gpu, x_ptr, wref(0), y_ptr, rows, t, false)? };
                let got = st.memcpy_dtov(&y.slice(..t * rows))?;
                let (mut num, mut den) = (0f64, 0f64);
                for tok in 0..t {
                    for (j, &row) in sample.iter().enumerate() {
                        let d = got[tok * rows + row] as f64 - want[tok * SAMPLED_ROWS + j];
                        num += if d.is_nan() { f64::INFINITY } else { d * d };
                        den += want[tok * SAMPLED_ROWS + j].powi(2);
                    }
                }
                // Every output written (the poison is gone).
                if got.iter().any(|v| v.is_nan()) {
                    num = f64::INFINITY;
                }
                errs[i] = (num / den.max(1e-30)).sqrt();
                let mut us = Vec::new();
                for k in 0..30 {
                    let start = st.record_event(timing)?;
                    // Safety: as above.
                    unsafe { products.matmul(&gpu, x_ptr, wref(k + 1), y_ptr, rows, t, false)? };
                    let end = st.record_event(timing)?;
                    end.synchronize()?;
                    us.push(start.elapsed_ms(&end)? as f64 * 1e3);
                }
                times[i] = median(us);
            }
            worst = worst.max(errs[0]).max(errs[1]);
            let gbs = |us: f64| (2 * size) as f64 / us / 1e3;
            println!(
                "{:<9} {:>2}  {:>10.2e} {:>10.2e}  {:>8.1} {:>8.1}  {:>9.0} {:>9.0}  {:>6.2}",
                name,
                t,
                errs[0],
                errs[1],
                times[0],
                times[1],
                gbs(times[0]),
                gbs(times[1]),
                times[1] / times[0]
            );
        }
        // Back to back in one stream, as in a decode step: 30 launches between two
        // events, with and without programmatic dependent launch (with it, a launch's
        // first weight loads overlap the end of the one before).
        products.set_gemv(true);
        for t in 1..=GEMV_MAX_TOKENS {
            let mut each = [0f64; 2];
            for (i, pdl) in [false, true].into_iter().enumerate() {
                gpu.set_pdl(pdl);
                let y_ptr = dptr(&y, &st);
                let mut runs = Vec::new();
                for _ in 0..5 {
                    let start = st.record_event(timing)?;
                    for k in 0..30 {
                        // Safety: as above.
                        unsafe {
                            products.matmul(&gpu, x_ptr, wref(k + 1), y_ptr, rows, t, false)?
                        };
                    }
                    let end = st.record_event(timing)?;
                    end.synchronize()?;
                    runs.push(start.elapsed_ms(&end)? as f64 * 1e3 / 30.0);
                }
                each[i] = median(runs);
            }
            gpu.set_pdl(true);
            let gbs = |us: f64| (2 * size) as f64 / us / 1e3;
            println!(
                "{name:<9} t = {t}, 30 back to back: PDL off {:.1} µs ({:.0} GB/s), on {:.1} µs ({:.0} GB/s)",
                each[0],
                gbs(each[0]),
                each[1],
                gbs(each[1])
            );
        }
        // Accumulating (the residual products): y = y0 + x · wᵀ.
        products.set_gemv(true);
        let t = GEMV_MAX_TOKENS;
        let y0: Vec<f32> = (0..t * rows).map(|_| r()).collect();
        st.memcpy_htod(&y0, &mut y.slice_mut(..t * rows))?;
        let y_ptr = dptr(&y, &st);
        // Safety: as above.
        unsafe { products.matmul(&gpu, x_ptr, wref(0), y_ptr, rows, t, true)? };
        let got = st.memcpy_dtov(&y.slice(..t * rows))?;
        let want = reference(t);
        let (mut num, mut den) = (0f64, 0f64);
        for tok in 0..t {
            for (j, &row) in sample.iter().enumerate() {
                let w = y0[tok * rows + row] as f64 + want[tok * SAMPLED_ROWS + j];
                let d = got[tok * rows + row] as f64 - w;
                num += if d.is_nan() { f64::INFINITY } else { d * d };
                den += w * w;
            }
        }
        let acc_err = (num / den.max(1e-30)).sqrt();
        println!("{name:<9} accumulate, t = {t}: gemv rel err {acc_err:.2e}");
        worst = worst.max(acc_err);
        if name == "gate|up" {
            silu_worst = silu_worst.max(check_silu(
                &gpu,
                &products,
                &host_w,
                &host_x,
                x_ptr,
                wref(0),
            )?);
        }
    }
    // bf16 outputs: 8 significant bits.
    if silu_worst > 1e-2 || silu_worst.is_nan() {
        eprintln!("FAIL: the fused SiLU product differs from the f64 reference ({silu_worst:.2e})");
        std::process::exit(1);
    }
    if worst > 1e-4 || worst.is_nan() {
        eprintln!("FAIL: a product differs from the f64 reference (worst rel err {worst:.2e})");
        std::process::exit(1);
    }
    println!("ok: worst relative error {worst:.2e}");
    Ok(())
}
