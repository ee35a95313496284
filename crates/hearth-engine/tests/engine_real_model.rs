//! The engine on the real default model: batching, prefix cache, preemption, abort.

mod common;

use common::*;
use hearth_engine::{EngineConfig, Event, FinishReason, Request, SamplingParams};

const PROMPTS: [&str; 8] = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "Water boils at a temperature of",
    "A haiku about the sea:",
    "The quick brown fox",
    "In 1969, humans first",
];

fn small_config() -> EngineConfig {
    EngineConfig {
        kv_cache_bytes: 256 << 20,
        max_model_len: 2048,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_greedy_requests_match_running_alone() {
    let f = start(small_config());
    let mut alone = Vec::new();
    for p in PROMPTS {
        alone.push(run(&f.engine, prompt(&f.tokenizer, p), greedy(24)).await);
    }
    let together = futures_join(&f, &PROMPTS, greedy(24)).await;
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(
            a.tokens, t.tokens,
            "prompt {i} ({}) differs when batched",
            PROMPTS[i]
        );
        assert_eq!(a.text, t.text);
    }
    assert!(alone
        .iter()
        .all(|o| o.reason == FinishReason::Length && o.usage.completion_tokens == 24));
    wait_idle(&f.engine).await;
}

async fn futures_join(f: &Fixture, prompts: &[&str], params: SamplingParams) -> Vec<Outcome> {
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (e, ids, params) = (f.engine.clone(), prompt(&f.tokenizer, p), params.clone());
            tokio::spawn(async move { run(&e, ids, params).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task joins"));
    }
    out
}

fn long_prefix(tok: &hearth_text::Tokenizer) -> Vec<u32> {
    let text = "You are a careful assistant. Answer briefly and precisely. ".repeat(12);
    prompt(tok, &text)
}

/// An engine with prefix caching and one without, for reference outputs.
fn cached_and_uncached() -> (Fixture, Fixture) {
    let uncached = start(EngineConfig {
        enable_prefix_caching: false,
        ..small_config()
    });
    (start(small_config()), uncached)
}

/// The cached K/V are the computed ones: the first token's top-5 logprobs agree with
/// the reference's.
fn assert_same_first_logprobs(hit: &Outcome, reference: &Outcome) {
    let (h, r) = (&hit.logprobs[0].top, &reference.logprobs[0].top);
    assert_eq!(h.len(), 5);
    for ((ht, hl), (rt, rl)) in h.iter().zip(r) {
        assert_eq!(ht, rt);
        assert!((hl - rl).abs() < 1e-4, "logprob {hl} against {rl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_cache_hits_and_gives_the_same_output() {
    let (cached, uncached) = cached_and_uncached();
    let base = long_prefix(&cached.tokenizer);
    // The shared prefix ends inside a block: the hit must reach its last token.
    assert_ne!(
        base.len() % 16,
        0,
        "the test wants a prefix that ends inside a block"
    );
    let mut second = base.clone();
    second.extend(prompt(&cached.tokenizer, " What is two plus two?"));

    // 24 generated tokens fill the block that holds the prefix's end, so it is cached.
    let first = run(&cached.engine, base.clone(), greedy(24)).await;
    assert_eq!(first.usage.cached_prompt_tokens, 0);
    let with_logprobs = SamplingParams {
        logprobs: Some(5),
        ..greedy(16)
    };
    let hit = run(&cached.engine, second.clone(), with_logprobs.clone()).await;
    assert!(
        (base.len()..second.len()).contains(&hit.usage.cached_prompt_tokens),
        "expected the {} prefix tokens cached, got {}",
        base.len(),
        hit.usage.cached_prompt_tokens
    );
    let s = cached.engine.stats();
    assert_eq!(
        s.prefix_cache_hit_tokens as usize,
        hit.usage.cached_prompt_tokens
    );

    let reference = run(&uncached.engine, second, with_logprobs).await;
    assert_eq!(reference.usage.cached_prompt_tokens, 0);
    assert_eq!(
        hit.tokens, reference.tokens,
        "a prefix-cache hit changed the output"
    );
    assert_same_first_logprobs(&hit, &reference);
}

/// A prompt sent again (a regenerated answer) reuses all but its last token, though
/// its end lies inside a block that its first, one-token answer never filled: the
/// finished sequence's partly filled last block stays cached. The answer's logprobs
/// are those of an engine with no prefix cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_sent_again_reuses_all_but_its_last_token() {
    let (cached, uncached) = cached_and_uncached();
    let ids = long_prefix(&cached.tokenizer);
    assert_ne!(
        ids.len() % 16,
        0,
        "the test wants a prompt that ends inside a block"
    );
    let one = SamplingParams {
        logprobs: Some(5),
        ..greedy(1)
    };
    let first = run(&cached.engine, ids.clone(), one.clone()).await;
    assert_eq!(first.usage.cached_prompt_tokens, 0);
    let again = run(&cached.engine, ids.clone(), one.clone()).await;
    assert_eq!(again.usage.cached_prompt_tokens, ids.len() - 1);
    let reference = run(&uncached.engine, ids, one).await;
    assert_same_first_logprobs(&again, &reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_prefill_gives_the_same_output() {
    let big = start(small_config());
    let chunked = start(EngineConfig {
        max_num_batched_tokens: 24,
        ..small_config()
    });
    let ids = long_prefix(&big.tokenizer);
    let a = run(&big.engine, ids.clone(), greedy(12)).await;
    let b = run(&chunked.engine, ids, greedy(12)).await;
    assert_eq!(a.tokens, b.tokens);
    assert!(chunked.engine.stats().steps >= b.usage.prompt_tokens as u64 / 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_loses_nothing() {
    let roomy = start(small_config());
    // 30 layers x 3 kv heads x 64 x 2 x 4 bytes x 16 tokens = 737,280 bytes a block:
    // 12 blocks hold 192 tokens, far less than 8 requests of ~10 + 40 tokens need.
    let tight = start(EngineConfig {
        kv_cache_bytes: 12 * 737_280,
        ..small_config()
    });
    assert_eq!(tight.engine.stats().total_blocks, 12);
    let mut alone = Vec::new();
    for p in PROMPTS {
        alone.push(run(&roomy.engine, prompt(&roomy.tokenizer, p), greedy(40)).await);
    }
    let together = futures_join(&tight, &PROMPTS, greedy(40)).await;
    for (a, t) in alone.iter().zip(&together) {
        assert_eq!(a.tokens, t.tokens);
        assert_eq!(t.reason, a.reason);
    }
    assert!(
        tight.engine.stats().preemptions > 0,
        "the budget should have forced preemption"
    );
    wait_idle(&tight.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_frees_its_blocks() {
    let f = start(EngineConfig {
        enable_prefix_caching: false,
        ..small_config()
    });
    let params = SamplingParams {
        ignore_eos: true,
        ..greedy(500)
    };
    let mut stream = f
        .engine
        .submit(Request {
            prompt_ids: long_prefix(&f.tokenizer),
            params,
        })
        .expect("accepted");
    let mut seen = 0;
    while let Some(ev) = stream.next().await {
        if let Event::Delta { .. } = ev {
            seen += 1;
            if seen == 3 {
                break;
            }
        }
    }
    assert!(f.engine.stats().used_blocks > 0);
    drop(stream);
    let s = wait_idle(&f.engine).await;
    assert_eq!(s.aborted_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_and_limits() {
    let f = start(small_config());
    let ids = prompt(&f.tokenizer, "Count: 1, 2, 3, 4, 5,");
    let free = run(&f.engine, ids.clone(), greedy(20)).await;
    // Stop on a piece of what greedy decoding produces anyway, across token boundaries.
    let cut = free
        .text
        .char_indices()
        .nth(free.text.chars().count() / 2)
        .map(|(i, _)| i)
        .expect("text");
    let stop_str: String = free.text[cut..].chars().take(3).collect();
    let params = SamplingParams {
        stop: vec![stop_str.clone()],
        ..greedy(20)
    };
    let stopped = run(&f.engine, ids.clone(), params).await;
    assert_eq!(stopped.reason, FinishReason::Stop);
    let expected = &free.text[..free.text.find(&stop_str).expect("stop string occurs")];
    assert_eq!(stopped.text, expected);

    let err = f
        .engine
        .submit(Request {
            prompt_ids: ids.clone(),
            params: greedy(5000),
        })
        .err();
    assert!(matches!(
        err,
        Some(hearth_engine::EngineError::ContextTooLong { .. })
    ));
    let err = f
        .engine
        .submit(Request {
            prompt_ids: vec![],
            params: greedy(5),
        })
        .err();
    assert_eq!(err, Some(hearth_engine::EngineError::EmptyPrompt));

    let params = SamplingParams {
        ignore_eos: true,
        min_tokens: 10,
        ..greedy(10)
    };
    let fixed = run(&f.engine, ids, params).await;
    assert_eq!(fixed.usage.completion_tokens, 10);
}
