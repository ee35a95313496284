//! Bad requests get OpenAI-shaped errors with the right status, and the server keeps
//! serving afterwards.

mod common;

use common::{assert_error_shape, post, Server, MODEL_NAME};
use serde_json::{json, Value};

async fn raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
    )
}

fn chat(extra: Value) -> Value {
    let mut b = json!({"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_get_openai_errors_and_the_server_survives() {
    // A short context makes "longer than the context" cheap to build.
    let s = Server::start(&["--max-model-len", "256", "--max-body-size", "64KiB"]);
    let chat_url = s.url("/v1/chat/completions");
    let cmpl_url = s.url("/v1/completions");

    let (st, v) = raw(&chat_url, "{\"model\": ").await;
    assert_eq!(st, 400, "malformed JSON: {v}");
    assert_error_shape(&v);
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let cases: Vec<(&str, Value, u16)> = vec![
        ("wrong type", chat(json!({"max_tokens": "ten"})), 400),
        ("messages not a list", chat(json!({"messages": "hi"})), 400),
        (
            "missing model",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            400,
        ),
        (
            "unknown model",
            chat(json!({"model": "no-such-model"})),
            404,
        ),
        ("negative max_tokens", chat(json!({"max_tokens": -1})), 400),
        (
            "huge max_tokens",
            chat(json!({"max_tokens": 1_000_000_000})),
            400,
        ),
        ("temperature < 0", chat(json!({"temperature": -1})), 400),
        ("top_p 0", chat(json!({"top_p": 0})), 400),
        ("n = 0", chat(json!({"n": 0})), 400),
        ("empty messages", chat(json!({"messages": []})), 400),
    ];
    for (what, body, want) in cases {
        let (st, v) = post(&chat_url, &body).await;
        assert_eq!(st, want, "{what}: {v}");
        assert_error_shape(&v);
    }
    let (st, v) = post(&chat_url, &chat(json!({"model": "no-such-model"}))).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );

    // A prompt longer than the context (256 tokens) is a 400 like vLLM's.
    let long = "hello ".repeat(600);
    let (st, v) = post(
        &chat_url,
        &chat(json!({"messages": [{"role": "user", "content": long}]})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context length"),
        "{v}"
    );
    let (st, v) = post(
        &cmpl_url,
        &json!({"model": MODEL_NAME, "prompt": vec![100u32; 300]}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_error_shape(&v);
    let (st, v) = post(
        &cmpl_url,
        &json!({"model": MODEL_NAME, "prompt": [999_999], "max_tokens": 2}),
    )
    .await;
    assert_eq!(st, 400, "out-of-vocabulary id: {v}");
    let (st, v) = post(&cmpl_url, &json!({"model": MODEL_NAME, "prompt": []})).await;
    assert_eq!(st, 400, "empty prompt: {v}");

    // A body over --max-body-size is a 413 in the same shape.
    let big = serde_json::to_vec(&chat(
        json!({"messages": [{"role": "user", "content": "x".repeat(100_000)}]}),
    ))
    .unwrap();
    let (st, v) = raw(&chat_url, big).await;
    assert_eq!(st, 413, "{v}");
    assert_error_shape(&v);

    // Unknown routes are OpenAI-shaped 404s too.
    let resp = reqwest::get(s.url("/v1/nothing")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_error_shape(&resp.json().await.unwrap());

    // Still serving, and nothing was left in the engine.
    let (st, v) = post(&chat_url, &chat(json!({"temperature": 0}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["usage"]["completion_tokens"].as_u64().map(|n| n >= 1),
        Some(true)
    );
    let stats = s.stats().await;
    assert_eq!(stats["running"], 0, "{stats}");
    assert_eq!(stats["used_blocks"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_is_a_503_and_accepted_requests_complete() {
    let s = Server::start(&["--max-num-seqs", "1", "--max-queued-requests", "1"]);
    let url = s.url("/v1/chat/completions");
    let body = chat(json!({"max_tokens": 48, "ignore_eos": true, "temperature": 0}));
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move { post(&url, &body).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for h in sends {
        let (st, v) = h.await.expect("joins");
        match st {
            200 => {
                assert_eq!(v["usage"]["completion_tokens"], 48, "{v}");
                ok += 1;
            }
            503 => {
                assert_error_shape(&v);
                refused += 1;
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
    // One running and one queued at most: with 4 at once, some are refused, none lost.
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    let stats = s.wait_idle(30).await;
    assert_eq!(stats["queued"], 0, "{stats}");
}
