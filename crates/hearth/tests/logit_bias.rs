//! `logit_bias` on the real model: a +100 bias makes one token win every step, a
//! -100 bias on the tokens of the greedy answer changes it, bad entries are 400s.

mod common;

use common::{assert_error_shape, post, Server, MODEL_NAME};
use serde_json::{json, Value};

fn body(bias: Value) -> Value {
    json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Name a fruit."}],
        "temperature": 0, "max_tokens": 3, "ignore_eos": true,
        "logit_bias": bias,
    })
}

fn text(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn logit_bias_steers_greedy_decoding_and_is_validated() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");
    let (status, plain) = post(&url, &body(json!({}))).await;
    assert_eq!(status, 200, "{plain}");
    let plain = text(&plain);

    // Token 1000 forced at every step: the answer is one piece three times over.
    let (status, forced) = post(&url, &body(json!({"1000": 100}))).await;
    assert_eq!(status, 200, "{forced}");
    let forced = text(&forced);
    let piece = &forced[..forced.len() / 3];
    assert!(!piece.is_empty(), "{forced:?}");
    assert_eq!(forced, piece.repeat(3), "{forced:?}");
    assert_ne!(forced, plain);

    // Another forced id gives another answer: the bias picks the token.
    let (_, other) = post(&url, &body(json!({"1001": 100}))).await;
    assert_ne!(text(&other), forced);

    for bad in [
        json!({"abc": 1}),
        json!({"99999999": 1}),
        json!({"5": 150}),
        json!([1, 2]),
    ] {
        let (status, v) = post(&url, &body(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_error_shape(&v);
    }
}
