//! Times a long prompt's prefill cold and with a prefix-cache hit, in one process, as
//! `hearth serve` runs them (f16 KV, blocks of 16, chunks of 512 tokens), e.g.
//! `cargo run --release -p hearth-models --example prefill_hit -- MODEL.gguf`
//! (MODEL defaults to $HEARTH_TEST_MODEL). Prints median milliseconds for the cold
//! prompt, for the hit (only the tokens past the cached ones are computed) and their
//! ratio, round by round. `HEARTH_HIT_PROMPT=2000` the prompt's tokens,
//! `HEARTH_HIT_CACHED=1800` the tokens a hit finds cached (to the token, as the prefix
//! cache reuses them), `HEARTH_HIT_CHUNK=512` the tokens a forward pass,
//! `HEARTH_HIT_ROUNDS=7`. `HEARTH_HIT_AB=VAR:a,b` runs each round once per setting of
//! VAR (a setting the library reads from the environment) and prints each one's medians.
//! Built with `--features phase-times`, it prints where the hits' time went.

use hearth_models::{
    load_gguf_with, BatchInput, KvCache, KvCacheLayout, KvDtype, LoadOptions, Pick, SeqInput,
};
use std::time::Instant;
use timing_env::{ab_settings, env_usize};

#[path = "timing_env/mod.rs"]
mod timing_env;

const BLOCK: usize = 16;

/// One forward pass: tokens `done..done + new` of the prompt, logits for the last one.
fn chunk(done: usize, new: usize, blocks: usize) -> BatchInput {
    let table: Vec<u32> = (0..blocks as u32).collect();
    let mut b = BatchInput::default();
    for pos in done..done + new {
        b.tokens.push(((pos * 31) % 40000 + 100) as u32);
        b.positions.push(pos as u32);
        b.slot_mapping.push(pos as u32);
    }
    b.seqs.push(SeqInput {
        block_table: table,
        num_computed: done,
        num_new: new,
        needs_logits: true,
        pick: Pick::Argmax,
    });
    b
}

/// Milliseconds to prefill tokens `from..prompt` in chunks of `step`.
fn prefill(
    model: &mut dyn hearth_models::CausalLm,
    cache: &mut KvCache,
    (from, prompt, step, blocks): (usize, usize, usize, usize),
) -> Result<f64, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut done = from;
    while done < prompt {
        let new = step.min(prompt - done);
        model.step(&chunk(done, new, blocks), cache)?;
        done += new;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Adds the phase times since the last `take` to `into` (built with `phase-times`).
fn add_phases(into: &mut [u64]) {
    for (t, ns) in into.iter_mut().zip(hearth_models::phase_times::take()) {
        *t += ns;
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `hearth serve` runs.
    hearth_models::threads::single_compute_pool();
    let path = match std::env::args().nth(1) {
        Some(p) => p,
        None => std::env::var("HEARTH_TEST_MODEL")?,
    };
    let mut loaded = load_gguf_with(path.as_ref(), &LoadOptions::default())?;
    hearth_models::huge_pages::collapse_noted();
    let s = loaded.spec.clone();
    let prompt = env_usize("HEARTH_HIT_PROMPT").unwrap_or(2000).max(1);
    let cached = env_usize("HEARTH_HIT_CACHED")
        .unwrap_or(1800)
        .min(prompt - 1);
    let step = env_usize("HEARTH_HIT_CHUNK").unwrap_or(512).max(1);
    let rounds = env_usize("HEARTH_HIT_ROUNDS").unwrap_or(7).max(1);
    let blocks = prompt.div_ceil(BLOCK);
    let layout = KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BLOCK,
        num_blocks: blocks,
    };
    let mut cache = KvCache::with_dtype(layout, KvDtype::F16);
    let ab = ab_settings("HEARTH_HIT_AB");
    let settings = ab.as_ref().map_or(vec![String::new()], |a| a.1.clone());
    // The first pass pays for first touches.
    prefill(&mut *loaded.model, &mut cache, (0, prompt, step, blocks))?;
    hearth_models::phase_times::take();
    let mut colds = vec![Vec::new(); settings.len()];
    let mut hits = vec![Vec::new(); settings.len()];
    let mut ratios = vec![Vec::new(); settings.len()];
    let n_phases = hearth_models::phase_times::PHASES.len();
    let (mut cold_phases, mut hit_phases) = (vec![0u64; n_phases], vec![0u64; n_phases]);
    for _ in 0..rounds {
        for (i, v) in settings.iter().enumerate() {
            if let Some((var, _)) = &ab {
                std::env::set_var(var, v);
            }
            let cold = prefill(&mut *loaded.model, &mut cache, (0, prompt, step, blocks))?;
            add_phases(&mut cold_phases);
            let hit = prefill(
                &mut *loaded.model,
                &mut cache,
                (cached, prompt, step, blocks),
            )?;
            add_phases(&mut hit_phases);
            colds[i].push(cold);
            hits[i].push(hit);
            ratios[i].push(100.0 * hit / cold);
        }
    }
    if hearth_models::phase_times::ENABLED {
        let runs = (rounds * settings.len()) as f64;
        println!(
            "{:<18} {:>9} {:>9} {:>8}",
            "ms a prompt", "cold", "hit", "hit/cold"
        );
        for (((_, name), c), h) in hearth_models::phase_times::PHASES
            .iter()
            .zip(&cold_phases)
            .zip(&hit_phases)
        {
            let (c, h) = (*c as f64 / 1e6 / runs, *h as f64 / 1e6 / runs);
            println!(
                "{name:<18} {c:9.2} {h:9.2} {:7.1}%",
                100.0 * h / c.max(1e-9)
            );
        }
    }
    for (i, v) in settings.iter().enumerate() {
        let rs: Vec<String> = ratios[i].iter().map(|r| format!("{r:.1}")).collect();
        let label = ab
            .as_ref()
            .map_or(String::new(), |a| format!("{}={v}: ", a.0));
        println!(
            "{label}prompt {prompt}, cached {cached}: cold {:.1} ms, hit {:.1} ms, hit/cold {:.2}% ({})",
            median(&mut colds[i]),
            median(&mut hits[i]),
            median(&mut ratios[i]),
            rs.join(" ")
        );
    }
    Ok(())
}
