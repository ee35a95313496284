//! The tiny random Hugging Face fixtures of hearth-models through the real engine
//! (EngineHandle, scheduler, paged KV, sampler): greedy ids and logprobs against
//! transformers' logits, alone, batched with other sequences, with chunked prefill,
//! and from the same weights converted to GGUF.
//!
//! Bound: every reference was computed by transformers in f32 — the bf16/f16 fixtures over
//! their rounded weights, upcast as hearth upcasts them (make_tiny_models.py:
//! "compute_dtype": "float32") — so F32, BF16 and F16 share one bound. The logits agree to
//! ~3e-6 (tiny_hf_models.rs); a log_softmax moves an error by at most twice that,
//! and the engine's log_softmax is in f32, so `TOL` = 1e-4 keeps the margin of that
//! test while staying far below any real fault (>1e-2 on the logits).

mod tiny_engine;

use futures::future::join_all;
use hearth_models::quantize::GgmlDType;
use hearth_models::{load_gguf, load_safetensors_dir};
use tiny_engine::*;

const TOL: f64 = 1e-4;

/// Reference alone, then beside three other prompts; returns (max error, ids of the others).
async fn scenario(name: &str, batched_tokens: usize) -> (f64, Vec<Vec<u32>>) {
    let r = reference(name);
    let what = format!(
        "{name} ({}, max_num_batched_tokens {batched_tokens})",
        r.weights_dtype
    );

    let model = load_safetensors_dir(&fixture_dir(name))
        .expect("load")
        .model;
    let engine = start(model, config(batched_tokens));
    let (ids, lps) = generate(&engine, r.prompt.clone(), STEPS).await;
    let alone = check(&format!("{what} alone"), &r, &ids, &lps, TOL);

    // A fresh engine, so the prefix cache does not skip the reference's prefill.
    let model = load_safetensors_dir(&fixture_dir(name))
        .expect("load")
        .model;
    let engine = start(model, config(batched_tokens));
    let others = others(&r);
    // The others first, all submitted before any is read: they run for many more
    // steps than it takes to submit the reference, which so joins a running batch.
    // Different output lengths, so sequences leave the batch at different steps.
    let mut streams: Vec<_> = (others.iter().enumerate())
        .map(|(i, p)| submit(&engine, p.clone(), 5 + 3 * i))
        .collect();
    streams.push(submit(&engine, r.prompt.clone(), STEPS));
    let mut results = join_all(streams.into_iter().map(collect)).await;
    let (ids, lps) = results.pop().expect("reference result");
    // Run one after another, they would take this many steps; fewer means shared steps.
    let lens = others.iter().map(Vec::len).chain([r.prompt.len()]);
    let outs = (0..others.len()).map(|i| 5 + 3 * i).chain([STEPS]);
    let serial: usize = lens
        .zip(outs)
        .map(|(n, o)| n.div_ceil(batched_tokens) + o - 1)
        .sum();
    let steps = engine.stats().steps as usize;
    assert!(
        steps < serial,
        "{what}: {steps} steps, not batched ({serial} if serial)"
    );
    let together = check(&format!("{what} batched"), &r, &ids, &lps, TOL);
    eprintln!(
        "{what}: max logprob error alone {alone:.2e}, batched {together:.2e} ({steps} steps, {serial} if serial)"
    );
    (
        alone.max(together),
        results.into_iter().map(|(ids, _)| ids).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_ids_and_logprobs_match_transformers_through_the_engine() {
    for name in FIXTURES {
        // 512: whole prompts in one step; 5: the 12-token prompt prefilled in chunks
        // of at most 5 tokens, shared with the other sequences' chunks and decodes.
        let (whole, others_whole) = scenario(name, 512).await;
        let (chunked, others_chunked) = scenario(name, 5).await;
        // The other sequences do not depend on how prefill was cut either.
        assert_eq!(
            others_whole, others_chunked,
            "{name}: other sequences differ"
        );
        eprintln!("{name}: worst {:.2e}", whole.max(chunked));
    }
}

/// Greedy ids of the reference prompt and the other prompts, each alone.
async fn greedy_all(model: Box<dyn hearth_models::CausalLm>, name: &str) -> Vec<Vec<u32>> {
    let r = reference(name);
    let engine = start(model, config(512));
    let mut out = Vec::new();
    for p in std::iter::once(r.prompt.clone()).chain(others(&r)) {
        out.push(generate(&engine, p, 12).await.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f32_gguf_conversion_gives_the_same_greedy_ids() {
    let tmp = std::env::temp_dir().join(format!("hearth-tiny-engine-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    for name in FIXTURES {
        let dst = tmp.join(format!("{name}.gguf"));
        let src = fixture_dir(name);
        hearth_models::hf_to_gguf::hf_to_gguf(&src, &dst, GgmlDType::F32).expect("convert");
        let st = load_safetensors_dir(&src).expect("load").model;
        let gg = load_gguf(&dst).expect("load gguf").model;
        let want = greedy_all(st, name).await;
        let got = greedy_all(gg, name).await;
        assert_eq!(
            want[0][..STEPS],
            reference(name).greedy[..],
            "{name}: safetensors path"
        );
        assert_eq!(
            got, want,
            "{name}: GGUF F32 greedy ids differ from safetensors"
        );
        eprintln!(
            "{name}: GGUF F32 = safetensors over {} greedy tokens",
            12 * want.len()
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
