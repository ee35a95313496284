//! Checks and times the GPU's picks (`cuda::pick`): each row's argmax and each row's
//! head for temperature sampling (`TopLogits`) against the host's, on rows made to be
//! hard: a Llama-3-sized vocabulary, ties at the cut, rows with NaN and -inf, rows
//! with fewer finite values than the head holds, a width that is no multiple of the
//! block. Run on a machine with a GPU:
//!   cargo build --release -p hearth-models --features cuda --example cuda_pick_check
//! Exits non-zero when a pick differs.

#[path = "check_util/mod.rs"]
mod check_util;

use std::time::Instant;

use check_util::{median, xorshift};
use hearth_models::cuda::pick::Picker;
use hearth_models::cuda::Gpu;
use hearth_models::{Next, Pick, TopLogits, TOP_CANDIDATES};

/// The engine's argmax: the first index of the largest value (NaN ignored, 0 if none).
fn argmax(v: &[f32]) -> u32 {
    let max = v
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    v.iter().position(|&x| x == max).unwrap_or(0) as u32
}

/// Why the GPU's head of `row` is not the host's, if it is not.
fn head_differs(row: &[f32], gpu: &TopLogits, t: f32) -> Option<String> {
    let host = TopLogits::of_row(row, t, TOP_CANDIDATES);
    if gpu.finite != host.finite || gpu.top.len() != host.top.len() {
        return Some(format!(
            "finite {} vs {}, head {} vs {}",
            gpu.finite,
            host.finite,
            gpu.top.len(),
            host.top.len()
        ));
    }
    let rel = match host.mass {
        0.0 => gpu.mass.abs(),
        m => ((gpu.mass - m) / m).abs(),
    };
    if rel.is_nan() || rel >= 1e-5 {
        return Some(format!(
            "mass {} vs {} (rel {rel:.1e})",
            gpu.mass, host.mass
        ));
    }
    let sorted = |h: &TopLogits| {
        let mut v = h.top.clone();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    };
    let (g, h) = (sorted(gpu), sorted(&host));
    let cut = h.last().map(|p| p.1);
    for (a, b) in g.iter().zip(&h) {
        // Every candidate is the row's value at its id; values equal in order; ids
        // equal except among values tied with the cut (which of those is kept is free).
        if row.get(a.0 as usize) != Some(&a.1) || a.1 != b.1 || (a.0 != b.0 && Some(a.1) != cut) {
            return Some(format!(
                "candidate ({}, {}) vs ({}, {})",
                a.0, a.1, b.0, b.1
            ));
        }
    }
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = Gpu::new(0)?;
    let mut picker = Picker::default();
    let mut rnd = xorshift(0x1234_5678);
    let mut failures = 0;
    let cases: Vec<(&str, usize, usize)> = vec![
        ("llama3 vocab", 128_256, 16),
        ("ties at the cut", 128_256, 8),
        ("few finite, NaN and -inf", 49_152 + 7, 8),
        ("odd width", 1000, 8),
        ("odd width, all finite", 49_152 + 7, 8),
        ("all -inf", 4096, 2),
    ];
    for (name, vocab, rows) in cases {
        let mut host = Vec::with_capacity(vocab * rows);
        for r in 0..rows {
            for i in 0..vocab {
                let u = rnd();
                let x = match name {
                    // A few tall logits over a spread floor, as a model's.
                    "llama3 vocab" | "odd width" | "odd width, all finite" => {
                        if u > 0.998 {
                            20.0 * u
                        } else {
                            8.0 * u
                        }
                    }
                    // 16 levels: hundreds of values tie at the cut.
                    "ties at the cut" => (u * 8.0).floor(),
                    "few finite, NaN and -inf" if i % 997 == r => 4.0 * u,
                    "few finite, NaN and -inf" if i % 3 == 0 => f32::NAN,
                    _ => f32::NEG_INFINITY,
                };
                host.push(x);
            }
        }
        let dev = gpu.stream.memcpy_stod(&host)?;
        // Alternate greedy and sampled rows (several temperatures) in one launch.
        let picks: Vec<Pick> = (0..rows)
            .map(|r| match r % 4 {
                0 => Pick::Argmax,
                k => Pick::Sample {
                    temperature: [0.0, 0.5, 1.0, 2.0][k],
                },
            })
            .collect();
        let got = picker.picks(&gpu, &dev, vocab, &picks)?;
        let ids = picker.argmax(&gpu, &dev, vocab, rows)?;
        let mut bad = 0;
        for (r, (p, n)) in picks.iter().zip(&got).enumerate() {
            let row = &host[r * vocab..(r + 1) * vocab];
            let why = match (p, n) {
                (Pick::Argmax, Next::Token(t)) if *t == argmax(row) => None,
                (Pick::Sample { temperature }, Next::Top(h)) => head_differs(row, h, *temperature),
                _ => Some(format!("{n:?} for {p:?}, argmax {}", argmax(row))),
            };
            let why = why.or_else(|| {
                (ids[r] != argmax(row))
                    .then(|| format!("argmax_rows {} vs {}", ids[r], argmax(row)))
            });
            if let Some(w) = why {
                bad += 1;
                eprintln!("  {name} row {r}: {w}");
            }
        }
        println!(
            "picks, {name} ({rows} rows of {vocab}): {} of {rows} as the host's",
            rows - bad
        );
        failures += bad;
    }
    // Time: a decode step's picks at 1, 8, 32 and 128 sequences of a Llama-3 vocabulary.
    let vocab = 128_256;
    for rows in [1usize, 8, 32, 128] {
        let host: Vec<f32> = (0..vocab * rows).map(|_| 8.0 * rnd()).collect();
        let dev = gpu.stream.memcpy_stod(&host)?;
        let sample = vec![Pick::Sample { temperature: 0.8 }; rows];
        let time = |f: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>| {
            let mut v = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                f()?;
                v.push(t.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<f64, Box<dyn std::error::Error>>(median(v))
        };
        let heads = time(&mut || {
            picker.picks(&gpu, &dev, vocab, &sample)?;
            Ok(())
        })?;
        let argmax = time(&mut || {
            picker.argmax(&gpu, &dev, vocab, rows)?;
            Ok(())
        })?;
        let mut rows_host = vec![0f32; vocab * rows];
        let download = time(&mut || {
            gpu.stream
                .memcpy_dtoh(&dev.slice(..vocab * rows), &mut rows_host)?;
            Ok(())
        })?;
        println!(
            "{rows} rows of {vocab}: heads {heads:.0} µs, argmax {argmax:.0} µs, whole rows to the host {download:.0} µs (median of 20, with the download)"
        );
    }
    if failures > 0 {
        eprintln!("FAIL: {failures} picks differ from the host's");
        std::process::exit(1);
    }
    Ok(())
}
