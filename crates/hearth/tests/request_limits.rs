//! Operator limits per request: prompt tokens, max_tokens (refused when asked, capped
//! when defaulted), n.

mod auth_support;
mod common;

use auth_support::{assert_anthropic_error, send, Home};
use common::{assert_error_shape, MODEL_NAME};
use serde_json::json;

#[tokio::test]
async fn prompt_output_and_n_limits() {
    let home = Home::new("limits");
    let srv = home.serve(&[
        "--max-prompt-tokens",
        "120",
        "--max-output-tokens",
        "6",
        "--max-n",
        "2",
    ]);
    let chat = srv.url("/v1/chat/completions");
    let long = "word ".repeat(400);
    let body = |content: &str, extra: serde_json::Value| {
        let mut b = json!({"model": MODEL_NAME, "messages": [{"role": "user", "content": content}], "temperature": 0});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };

    let a = send(
        "POST",
        &chat,
        &[],
        Some(&body(&long, json!({"max_tokens": 2}))),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_error_shape(&a.body);
    assert_eq!(a.body["error"]["param"], "messages");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 120"));
    let a = send(
        "POST",
        &srv.url("/v1/completions"),
        &[],
        Some(&json!({"model": MODEL_NAME, "prompt": long, "max_tokens": 2})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let m = json!({"model": MODEL_NAME, "max_tokens": 2, "messages": [{"role": "user", "content": long}]});
    let a = send("POST", &srv.url("/v1/messages"), &[], Some(&m)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_anthropic_error(&a.body, "invalid_request_error");

    // max_tokens over the cap is refused; unset, it is capped.
    for (field, v) in [("max_tokens", 7), ("max_completion_tokens", 100)] {
        let a = send("POST", &chat, &[], Some(&body("Hi", json!({ field: v })))).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.body["error"]["param"], field);
    }
    let m = json!({"model": MODEL_NAME, "max_tokens": 7, "messages": [{"role": "user", "content": "Hi"}]});
    let a = send("POST", &srv.url("/v1/messages"), &[], Some(&m)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("max_tokens"));
    let a = send(
        "POST",
        &chat,
        &[],
        Some(&body("Count to fifty.", json!({"ignore_eos": true}))),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["usage"]["completion_tokens"], 6);
    assert_eq!(a.body["choices"][0]["finish_reason"], "length");

    let a = send(
        "POST",
        &chat,
        &[],
        Some(&body("Hi", json!({"n": 3, "max_tokens": 1}))),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"]["param"], "n");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2"));

    // The server still answers a normal request.
    let a = send(
        "POST",
        &chat,
        &[],
        Some(&body("Hi", json!({"max_tokens": 2}))),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn tool_count_and_schema_limits() {
    let home = Home::new("limits-schema");
    let srv = home.serve(&["--max-tools", "1", "--max-schema-depth", "4"]);
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name,
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    };
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let chat = srv.url("/v1/chat/completions");

    let two = json!({"model": MODEL_NAME, "messages": msgs, "tools": [tool("f"), tool("g")]});
    let a = send("POST", &chat, &[], Some(&two)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_error_shape(&a.body);
    assert_eq!(a.body["error"]["param"], "tools");

    // depth 5: object > properties > a > properties > b
    let deep = json!({"type": "object", "properties": {"a": {"type": "object",
        "properties": {"b": {"type": "string"}}}}});
    let deep_tool = json!({"type": "function", "function": {"name": "f", "parameters": deep}});
    let a = send(
        "POST",
        &chat,
        &[],
        Some(&json!({"model": MODEL_NAME, "messages": msgs, "tools": [deep_tool]})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"]["param"], "tools");
    let rf = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": deep}});
    let a = send(
        "POST",
        &chat,
        &[],
        Some(&json!({"model": MODEL_NAME, "messages": msgs, "response_format": rf})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["error"]["param"], "response_format");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 4"));

    // Anthropic tools count too, in Anthropic's shape.
    let t = |n: &str| json!({"name": n, "input_schema": {"type": "object"}});
    let m =
        json!({"model": MODEL_NAME, "max_tokens": 4, "messages": msgs, "tools": [t("f"), t("g")]});
    let a = send("POST", &srv.url("/v1/messages"), &[], Some(&m)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_anthropic_error(&a.body, "invalid_request_error");

    // Within the limits the same server answers.
    let ok = json!({"model": MODEL_NAME, "messages": msgs, "max_tokens": 2});
    assert_eq!(send("POST", &chat, &[], Some(&ok)).await.status, 200);
}
