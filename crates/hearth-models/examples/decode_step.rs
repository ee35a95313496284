//! Times decode steps of a real GGUF model (batch of 1 and of 8 sequences), e.g.
//! `cargo run --release -p hearth-models --example decode_step -- MODEL.gguf [--dequantize]`
//! (MODEL defaults to $HEARTH_TEST_MODEL). Prints median milliseconds per step.
//! `HEARTH_DECODE_SEQS=8 HEARTH_DECODE_STEPS=500` time only that batch, that many
//! steps (for profiling the decode step alone); `HEARTH_DECODE_PREFILLS=9` runs the
//! prefill 9 times and prints the median (the first pays for first touches);
//! `HEARTH_DECODE_SPREAD=64` spreads the sequences' blocks 64 apart over a pool that
//! much larger, as a long-running server's are; `HEARTH_DECODE_BLOCK=32` the tokens a
//! KV block (16); `HEARTH_DECODE_PROMPT=1024` sets the
//! prompt length (32), `HEARTH_DECODE_KV=f16` the KV cache's dtype (f32). Built with
//! `--features phase-times`, it prints where the steps' time went, part by part.
//! `HEARTH_DECODE_AB=VAR:a,b` sets VAR to a and b on alternate steps and prints a median
//! for each (an A/B of a setting that the library reads from the environment, immune to
//! the host's drift); `HEARTH_DECODE_PASSES=4` runs the prefill and steps 4 times.

use hearth_models::{
    load_gguf_with, BatchInput, KvCache, KvCacheLayout, KvDtype, LoadOptions, Pick, SeqInput,
};
use std::time::Instant;
use timing_env::{ab_settings, env_usize};

#[path = "timing_env/mod.rs"]
mod timing_env;

const PROMPT: usize = 32;
const STEPS: usize = 24;

/// Milliseconds a step per phase since the last `take` (built with `phase-times`).
fn print_phases(steps: usize) {
    let ns = hearth_models::phase_times::take();
    let total: u64 = ns.iter().sum();
    for ((_, name), ns) in hearth_models::phase_times::PHASES.iter().zip(ns) {
        let ms = ns as f64 / 1e6 / steps.max(1) as f64;
        let share = 100.0 * ns as f64 / total.max(1) as f64;
        println!("  {name:<18} {ms:7.3} ms/step {share:5.1}%");
    }
}

/// `HEARTH_DECODE_BLOCK`: tokens a KV block (16, the engine's default).
fn block_size() -> usize {
    env_usize("HEARTH_DECODE_BLOCK").unwrap_or(16).max(1)
}

/// What a decode step's sequences ask for: their greedy token, as the server's greedy
/// requests do (`HEARTH_DECODE_PICK=row`: their whole logits rows).
fn pick() -> Pick {
    match std::env::var("HEARTH_DECODE_PICK").as_deref() {
        Ok("row") => Pick::Row,
        _ => Pick::Argmax,
    }
}

/// `HEARTH_DECODE_SPREAD`: pool blocks between a sequence's consecutive blocks (1).
fn spread() -> usize {
    env_usize("HEARTH_DECODE_SPREAD").unwrap_or(1).max(1)
}

/// One step: `new` tokens for each of `seqs` sequences, each with its own blocks.
fn step(seqs: usize, blocks: usize, done: usize, new: usize) -> BatchInput {
    let (spread, bs) = (spread(), block_size());
    let mut b = BatchInput::default();
    for s in 0..seqs {
        // Blocks of the sequences interleaved, `spread` apart, as a long-running
        // server's pool hands them out.
        let table: Vec<u32> = (0..blocks)
            .map(|i| ((i * seqs + s) * spread) as u32)
            .collect();
        for j in 0..new {
            let pos = done + j;
            b.tokens.push(((s * 97 + pos * 31) % 40000 + 100) as u32);
            b.positions.push(pos as u32);
            b.slot_mapping
                .push(table[pos / bs] * bs as u32 + (pos % bs) as u32);
        }
        b.seqs.push(SeqInput {
            block_table: table,
            num_computed: done,
            num_new: new,
            needs_logits: true,
            pick: pick(),
        });
    }
    b
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `hearth serve` runs.
    hearth_models::threads::single_compute_pool();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dequantize = args.iter().any(|a| a == "--dequantize");
    let path = match args.iter().find(|a| !a.starts_with("--")) {
        Some(p) => p.clone(),
        None => std::env::var("HEARTH_TEST_MODEL")?,
    };
    let opts = LoadOptions {
        dequantize,
        ..LoadOptions::default()
    };
    let mut loaded = load_gguf_with(path.as_ref(), &opts)?;
    // As `hearth serve` does once a model is loaded.
    hearth_models::huge_pages::collapse_noted();
    let s = loaded.spec.clone();
    let steps = env_usize("HEARTH_DECODE_STEPS").unwrap_or(STEPS);
    let prompt = env_usize("HEARTH_DECODE_PROMPT").unwrap_or(PROMPT);
    let kv: KvDtype = match std::env::var("HEARTH_DECODE_KV") {
        Ok(v) => v.parse()?,
        Err(_) => KvDtype::F32,
    };
    let batches = match env_usize("HEARTH_DECODE_SEQS") {
        Some(n) => vec![n],
        None => vec![1, 8],
    };
    for seqs in batches {
        let layout = KvCacheLayout {
            num_layers: s.num_layers,
            num_kv_heads: s.num_kv_heads,
            head_dim: s.head_dim,
            block_size: block_size(),
            num_blocks: seqs * (prompt + steps + 1).div_ceil(block_size()) * spread(),
        };
        let blocks = (prompt + steps + 1).div_ceil(block_size());
        let mut cache = KvCache::with_dtype(layout, kv);
        // The first prefill also pays for first touches (the pool's pages); later ones
        // (`HEARTH_DECODE_PREFILLS`, the same tokens again) show the steady state.
        let mut prefills: Vec<f64> = (0..env_usize("HEARTH_DECODE_PREFILLS").unwrap_or(1).max(1))
            .map(|_| {
                let t = Instant::now();
                let out = loaded
                    .model
                    .forward(&step(seqs, blocks, 0, prompt), &mut cache);
                out.map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        let first = prefills[0];
        prefills.sort_by(f64::total_cmp);
        let prefill = prefills[prefills.len() / 2];
        if prefills.len() > 1 && hearth_models::phase_times::ENABLED {
            println!("prefill (first {first:.1} ms):");
            print_phases(prefills.len());
        }
        hearth_models::phase_times::take();
        // `HEARTH_DECODE_AB=VAR:a,b`: step i runs with VAR set to the (i mod n)th
        // value, so the settings see the same contexts and the same host; a median
        // each. `HEARTH_DECODE_PASSES=n`: the prompt's decode steps n times over.
        let ab = ab_settings("HEARTH_DECODE_AB");
        let passes = env_usize("HEARTH_DECODE_PASSES").unwrap_or(1).max(1);
        let mut by_setting: Vec<Vec<f64>> = vec![Vec::new(); ab.as_ref().map_or(1, |a| a.1.len())];
        let mut times = Vec::new();
        for pass in 0..passes {
            if pass > 0 {
                loaded
                    .model
                    .forward(&step(seqs, blocks, 0, prompt), &mut cache)?;
            }
            for i in 0..steps {
                let which = i % by_setting.len();
                if let Some((var, vals)) = &ab {
                    std::env::set_var(var, &vals[which]);
                }
                let t = Instant::now();
                loaded
                    .model
                    .step(&step(seqs, blocks, prompt + i, 1), &mut cache)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                times.push(ms);
                by_setting[which].push(ms);
            }
        }
        if let Some((var, vals)) = &ab {
            for (v, t) in vals.iter().zip(&mut by_setting) {
                t.sort_by(f64::total_cmp);
                println!("{var}={v}: decode step median {:.3} ms", t[t.len() / 2]);
            }
        }
        let steps = times.len();
        times.sort_by(f64::total_cmp);
        if hearth_models::phase_times::ENABLED {
            print_phases(steps);
        }
        println!(
            "dequantize={dequantize} kv={kv} seqs={seqs}: prefill {prompt} tok/seq {prefill:.1} ms, decode step median {:.2} ms (min {:.2})",
            times[steps / 2],
            times[0]
        );
    }
    Ok(())
}
