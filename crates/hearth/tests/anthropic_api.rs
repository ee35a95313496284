//! Anthropic's Messages API end to end against the real model.

mod common;

use common::{post, Server, MODEL_NAME};
use futures::StreamExt;
use serde_json::{json, Value};

fn body(extra: Value) -> Value {
    let mut b = json!({
        "model": MODEL_NAME,
        "max_tokens": 24,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// POSTs with the headers Anthropic clients send.
async fn send(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("x-api-key", "unused")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("POST")
}

/// (event name, data) pairs of an SSE body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            let v: Value = serde_json::from_str(d.trim()).expect("event JSON");
            out.push((std::mem::take(&mut name), v));
        }
    }
    out
}

async fn stream(s: &Server, b: &Value) -> Vec<(String, Value)> {
    let resp = send(&s.url("/v1/messages"), b).await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    sse_events(&resp.text().await.unwrap())
}

fn anthropic_error(status: u16, v: &Value, kind: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "status {status}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_stream_stop_sequences_and_count_tokens() {
    let s = Server::start(&[]);

    let resp = send(
        &s.url("/v1/messages"),
        &body(json!({"metadata": {"user_id": "u-1"}})),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    assert_eq!(
        (&v["type"], &v["role"], &v["model"]),
        (&json!("message"), &json!("assistant"), &json!(MODEL_NAME))
    );
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
    assert_eq!(v["content"][0]["type"], "text");
    let text = v["content"][0]["text"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    let input = v["usage"]["input_tokens"].as_u64().unwrap();
    let output = v["usage"]["output_tokens"].as_u64().unwrap();
    assert!(input > 10 && output > 0 && output <= 24, "{v}");
    match v["stop_reason"].as_str().unwrap() {
        "max_tokens" => assert_eq!(output, 24),
        "end_turn" => {}
        other => panic!("stop_reason {other}"),
    }
    assert!(v["stop_sequence"].is_null());

    // count_tokens agrees with what the answer reported.
    let (status, c) = post(&s.url("/v1/messages/count_tokens"), &body(json!({}))).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["input_tokens"].as_u64(), Some(input));

    // Streaming: the exact event order, the same greedy text, the same usage.
    let events = stream(&s, &body(json!({"stream": true}))).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let n = names.len();
    assert!(n >= 7, "{names:?}");
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[n - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        names[3..n - 3].iter().all(|n| *n == "content_block_delta"),
        "{names:?}"
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "{data}");
    }
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"].as_u64(), Some(input));
    assert_eq!(
        start["id"].as_str().unwrap().len(),
        v["id"].as_str().unwrap().len()
    );
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let streamed: String = events[3..n - 3]
        .iter()
        .map(|(_, d)| {
            assert_eq!(
                (d["index"].as_u64(), &d["delta"]["type"]),
                (Some(0), &json!("text_delta"))
            );
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(streamed, text);
    let delta = &events[n - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], v["stop_reason"]);
    assert_eq!(delta["usage"]["output_tokens"].as_u64(), Some(output));

    // Stop sequences: cut at a word the greedy answer contains; the other one never matches.
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 3, "answer too short to cut: {text:?}");
    let stop = format!(" {}", words[2]);
    let want = &text[..text.find(&stop).unwrap()];
    let b = body(json!({"stop_sequences": ["zzz-never", stop]}));
    let (status, cut) = post(&s.url("/v1/messages"), &b).await;
    assert_eq!(status, 200, "{cut}");
    assert_eq!(cut["content"][0]["text"], want);
    assert_eq!(cut["stop_reason"], "stop_sequence", "{cut}");
    assert_eq!(cut["stop_sequence"], stop.as_str());
    let mut sb = b.clone();
    sb["stream"] = json!(true);
    let events = stream(&s, &sb).await;
    let (name, last_delta) = &events[events.len() - 2];
    assert_eq!(name, "message_delta");
    assert_eq!(last_delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(last_delta["delta"]["stop_sequence"], stop.as_str());

    // A client that goes away mid-stream frees its request.
    let long = body(json!({"stream": true, "max_tokens": 2000, "temperature": 1,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}));
    let resp = send(&s.url("/v1/messages"), &long).await;
    let mut bytes = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        let chunk = bytes.next().await.expect("stream ended early").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(bytes);
    // Well before 2000 tokens could be generated.
    s.wait_idle(3).await;
    let (status, _) = post(&s.url("/v1/messages"), &body(json!({"max_tokens": 2}))).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_get_anthropic_errors_and_the_server_keeps_serving() {
    let s = Server::start(&[]);
    let url = s.url("/v1/messages");
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!({"model": "claude-nope"}), 404, "not_found_error"),
        (json!({"max_tokens": 0}), 400, "invalid_request_error"),
        (json!({"max_tokens": "ten"}), 400, "invalid_request_error"),
        (json!({"temperature": 1.5}), 400, "invalid_request_error"),
        (json!({"top_p": 0}), 400, "invalid_request_error"),
        (json!({"messages": []}), 400, "invalid_request_error"),
        (
            json!({"messages": [{"role": "assistant", "content": "x"}]}),
            400,
            "invalid_request_error",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}),
            400,
            "invalid_request_error",
        ),
        (
            json!({"messages": user, "tools": [{"name": "f", "input_schema": {}}]}),
            400,
            "invalid_request_error",
        ),
        (json!({"stop_sequences": "x"}), 400, "invalid_request_error"),
        (
            json!({"max_tokens": 100000000}),
            400,
            "invalid_request_error",
        ),
    ];
    for (extra, status, kind) in cases {
        let (got, v) = post(&url, &body(extra.clone())).await;
        assert_eq!(got, status, "{extra}: {v}");
        anthropic_error(got, &v, kind);
    }
    let mut missing = body(json!({}));
    missing.as_object_mut().unwrap().remove("max_tokens");
    let (got, v) = post(&url, &missing).await;
    assert_eq!(got, 400);
    anthropic_error(got, &v, "invalid_request_error");

    // Malformed JSON, and count_tokens' own checks.
    let resp = reqwest::Client::new()
        .post(&url)
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    let got = resp.status().as_u16();
    assert_eq!(got, 400);
    anthropic_error(got, &resp.json().await.unwrap(), "invalid_request_error");
    let (got, v) = post(
        &s.url("/v1/messages/count_tokens"),
        &json!({"model": "nope", "messages": user}),
    )
    .await;
    assert_eq!(got, 404);
    anthropic_error(got, &v, "not_found_error");

    // A body over the limit is a 413 request_too_large.
    let huge = "x".repeat(9 << 20);
    let (got, v) = post(
        &url,
        &body(json!({"messages": [{"role": "user", "content": huge}]})),
    )
    .await;
    assert_eq!(got, 413);
    anthropic_error(got, &v, "request_too_large");

    let (got, v) = post(&url, &body(json!({"max_tokens": 3}))).await;
    assert_eq!(got, 200, "{v}");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_is_529_overloaded_error() {
    let s = Server::start(&["--max-num-seqs", "1", "--max-queued-requests", "1"]);
    let url = s.url("/v1/messages");
    let b = body(json!({"max_tokens": 48,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}));
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let (url, b) = (url.clone(), b.clone());
            tokio::spawn(async move { post(&url, &b).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for h in sends {
        let (status, v) = h.await.expect("joins");
        match status {
            200 => ok += 1,
            529 => {
                anthropic_error(status, &v, "overloaded_error");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    s.wait_idle(30).await;
}
