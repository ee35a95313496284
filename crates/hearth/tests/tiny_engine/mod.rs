//! Shared by the tiny-model engine tests: the hearth-models tiny fixtures (random
//! weights, transformers reference logits), the 256-id tiny tokenizer of hearth-text,
//! and one greedy request with logprobs through a real `EngineHandle`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_engine::{
    EngineConfig, EngineHandle, Event, Request, RequestStream, SamplingParams, TokenLogprob,
};
use hearth_models::CausalLm;
use hearth_text::Tokenizer;
use serde_json::Value;

pub const FIXTURES: [&str; 6] = [
    "llama3",
    "llama3_bf16",
    "qwen2",
    "qwen2_f16",
    "qwen3",
    "gemma3",
];

/// Tokens generated per reference request: the reference holds prefill logits and 3
/// decode steps, i.e. the distributions of 4 greedy tokens.
pub const STEPS: usize = 4;
pub const TOP: usize = 5;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/")
        .to_path_buf()
}

pub fn fixture_dir(name: &str) -> PathBuf {
    crates_dir().join(format!("hearth-models/tests/fixtures/tiny/{name}"))
}

pub fn tokenizer() -> Arc<Tokenizer> {
    let dir = crates_dir().join("hearth-text/tests/fixtures/hf_tiny");
    Arc::new(Tokenizer::from_hf_dir(&dir).expect("tiny tokenizer"))
}

pub struct Reference {
    pub prompt: Vec<u32>,
    pub weights_dtype: String,
    /// log_softmax of the logits each generated token was picked from (f64).
    pub steps: Vec<Vec<f64>>,
    /// The greedy ids: argmax of each of `steps`, checked against the decode tokens
    /// the reference fed.
    pub greedy: Vec<u32>,
}

fn log_softmax(v: &Value) -> Vec<f64> {
    let x: Vec<f64> = (v.as_array().expect("logits").iter())
        .map(|x| x.as_f64().expect("logit"))
        .collect();
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| v - lse).collect()
}

pub fn argmax(x: &[f64]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

pub fn reference(name: &str) -> Reference {
    let path = fixture_dir(name).join("reference.json");
    let text = std::fs::read_to_string(&path).expect("reference.json");
    let j: Value = serde_json::from_str(&text).expect("reference json");
    assert_eq!(j["format"], "hearth-tiny-reference/1");
    let id = |v: &Value| v.as_u64().expect("token id") as u32;
    let prompt: Vec<u32> = j["prompt"]
        .as_array()
        .expect("prompt")
        .iter()
        .map(id)
        .collect();
    let prefill = j["prefill"].as_array().expect("prefill");
    let decode = j["decode"].as_array().expect("decode");
    let mut steps = vec![log_softmax(prefill.last().expect("prefill logits"))];
    steps.extend(decode.iter().map(|d| log_softmax(&d["logits"])));
    let greedy: Vec<u32> = steps.iter().map(|s| argmax(s)).collect();
    // The reference fed its own greedy tokens: decode[i].token is argmax of step i.
    for (i, d) in decode.iter().enumerate() {
        assert_eq!(id(&d["token"]), greedy[i], "{name}: reference not greedy");
    }
    assert_eq!(steps.len(), STEPS);
    Reference {
        prompt,
        weights_dtype: j["weights_dtype"].as_str().unwrap_or("?").to_string(),
        steps,
        greedy,
    }
}

/// Small blocks (so the 12-token prompt spans several) and a small KV budget.
pub fn config(max_num_batched_tokens: usize) -> EngineConfig {
    EngineConfig {
        block_size: 4,
        kv_cache_bytes: 4 << 20,
        max_model_len: 128,
        max_num_batched_tokens,
        ..Default::default()
    }
}

pub fn start(model: Box<dyn CausalLm>, cfg: EngineConfig) -> EngineHandle {
    EngineHandle::start(model, tokenizer(), cfg).expect("engine starts")
}

pub fn params(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens,
        ignore_eos: true,
        logprobs: Some(TOP),
        ..Default::default()
    }
}

/// Submits one greedy request with logprobs.
pub fn submit(engine: &EngineHandle, prompt_ids: Vec<u32>, max_tokens: usize) -> RequestStream {
    let params = params(max_tokens);
    engine
        .submit(Request { prompt_ids, params })
        .expect("accepted")
}

/// Reads a request's stream to its end; returns its tokens and their logprobs.
pub async fn collect(mut stream: RequestStream) -> (Vec<u32>, Vec<TokenLogprob>) {
    let (mut ids, mut lps) = (Vec::new(), Vec::new());
    while let Some(ev) = stream.next().await {
        match ev {
            Event::Delta {
                token_ids,
                logprobs,
                ..
            } => {
                ids.extend(token_ids);
                lps.extend(logprobs);
            }
            Event::Finished { .. } => return (ids, lps),
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
    panic!("stream ended without Finished")
}

pub async fn generate(
    engine: &EngineHandle,
    prompt_ids: Vec<u32>,
    max_tokens: usize,
) -> (Vec<u32>, Vec<TokenLogprob>) {
    collect(submit(engine, prompt_ids, max_tokens)).await
}

/// Asserts the greedy ids and every reported logprob (chosen and top alternatives, by
/// rank and by id) against the reference; returns the largest error.
pub fn check(what: &str, r: &Reference, ids: &[u32], lps: &[TokenLogprob], tol: f64) -> f64 {
    assert_eq!(ids, r.greedy.as_slice(), "{what}: greedy ids differ");
    assert_eq!(lps.len(), ids.len(), "{what}: one logprob per token");
    let mut worst = 0f64;
    for (step, (lp, want)) in lps.iter().zip(&r.steps).enumerate() {
        assert_eq!(lp.token_id, ids[step], "{what}: logprob of another token");
        let mut err = (lp.logprob as f64 - want[lp.token_id as usize]).abs();
        assert_eq!(lp.top.len(), TOP, "{what} step {step}: top count");
        let mut sorted = want.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        for (rank, (tid, tlp)) in lp.top.iter().enumerate() {
            // By id: the reported value is that token's; by rank: near-ties may swap
            // ids but never the values of the ranks.
            err = err.max((*tlp as f64 - want[*tid as usize]).abs());
            err = err.max((*tlp as f64 - sorted[rank]).abs());
        }
        assert!(err < tol, "{what} step {step}: logprob error {err:.2e}");
        worst = worst.max(err);
    }
    worst
}

/// Other prompts of different lengths (ids spread over the vocabulary).
pub fn others(r: &Reference) -> Vec<Vec<u32>> {
    [5usize, 19, 33]
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            (0..n)
                .map(|i| {
                    ((i * (7 + 2 * k) + 11 * k + r.prompt[i % r.prompt.len()] as usize) % 256)
                        as u32
                })
                .collect()
        })
        .collect()
}
