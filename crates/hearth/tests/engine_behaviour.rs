//! Through HTTP: greedy batch invariance, and a client that disconnects mid-stream
//! frees its request in the engine.

mod common;

use std::time::Duration;

use common::{post, Server, MODEL_NAME};
use serde_json::{json, Value};

const PROMPTS: [&str; 8] = [
    "Write a short poem about the sea.",
    "What is 2 + 2?",
    "Name three colors.",
    "Explain gravity to a child.",
    "What is the capital of Italy?",
    "Give me a recipe for tea.",
    "Why is the sky blue?",
    "Tell me a fact about cats.",
];

fn body(prompt: &str) -> Value {
    json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 12,
        "logprobs": true,
    })
}

/// The generated token ids (from logprobs) and the text.
async fn greedy(url: &str, prompt: &str) -> (Vec<String>, String) {
    let (st, v) = post(url, &body(prompt)).await;
    assert_eq!(st, 200, "{v}");
    let tokens = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content")
        .iter()
        .map(|t| t["token"].as_str().unwrap().to_string())
        .collect();
    (
        tokens,
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_greedy_matches_alone() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");
    let mut alone = Vec::new();
    for p in PROMPTS {
        alone.push(greedy(&url, p).await);
    }
    let together = futures::future::join_all(PROMPTS.iter().map(|p| greedy(&url, p))).await;
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert!(!a.0.is_empty());
        assert_eq!(a, t, "prompt {i} ({}) differs when batched", PROMPTS[i]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_mid_stream_frees_the_request() {
    let s = Server::start(&[]);
    let body = json!({
        "model": MODEL_NAME,
        "prompt": "Once upon a time",
        "max_tokens": 4000,
        "ignore_eos": true,
        "stream": true,
    });
    let mut resp = reqwest::Client::new()
        .post(s.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Read until some tokens arrived, then hang up.
    let mut got = String::new();
    while got.matches("data:").count() < 4 {
        let chunk = resp.chunk().await.unwrap().expect("stream ended early");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    let busy = s.stats().await;
    assert_eq!(busy["running"], 1, "{busy}");
    assert!(busy["used_blocks"].as_u64().unwrap() > 0, "{busy}");
    drop(resp);

    let st = s.wait_idle(20).await;
    assert!(st["aborted_requests"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["generated_tokens"].as_u64().unwrap() < 4000, "{st}");

    // A non-streaming client that gives up is aborted the same way.
    let body = json!({"model": MODEL_NAME, "prompt": "Once upon a time", "max_tokens": 4000, "ignore_eos": true});
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let err = client
        .post(s.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let st = s.wait_idle(20).await;
    assert!(st["aborted_requests"].as_u64().unwrap() >= 2, "{st}");
    assert!(st["generated_tokens"].as_u64().unwrap() < 8000, "{st}");

    // And it still serves.
    let (st, v) = post(
        &s.url("/v1/completions"),
        &json!({"model": MODEL_NAME, "prompt": "Hi", "max_tokens": 2}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
}
