//! POST /v1/responses: the official `openai` SDK (tests/python/test_responses_sdk.py)
//! and raw HTTP for what the SDK cannot send.

mod common;

use common::{
    assert_error_shape, family_template, post, run_python_sdk_script, Server, MODEL_NAME,
};
use serde_json::json;

#[test]
fn openai_python_sdk_responses() {
    let s = Server::start(&[]);
    let out = run_python_sdk_script("openai", "test_responses_sdk.py", &[&s.base]);
    assert!(out.contains("ok"), "{out}");
}

/// Function tools: the model's template renders none, so the server runs with
/// Qwen2.5's real template and the hermes parser (as tools_api.rs does).
#[test]
fn openai_python_sdk_responses_with_tools() {
    let t = family_template("qwen2.5");
    let s = Server::start(&[
        "--tool-call-parser",
        "hermes",
        "--chat-template",
        t.to_str().expect("utf-8 path"),
    ]);
    let out = run_python_sdk_script(
        "openai",
        "test_responses_tools_sdk.py",
        &[&s.base, MODEL_NAME],
    );
    assert!(out.contains("ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_answer_like_chat_and_refuse_bad_input() {
    let s = Server::start(&[]);
    // Greedy: the Responses answer equals the chat answer to the same conversation.
    let (status, r) = post(
        &s.url("/v1/responses"),
        &json!({"model": MODEL_NAME, "input": "What is 2+2?", "instructions": "Be brief.",
                "temperature": 0, "max_output_tokens": 10}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let (status, c) = post(
        &s.url("/v1/chat/completions"),
        &json!({"model": MODEL_NAME, "temperature": 0, "max_tokens": 10, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        r["output"][0]["content"][0]["text"],
        c["choices"][0]["message"]["content"]
    );
    assert_eq!(r["usage"]["input_tokens"], c["usage"]["prompt_tokens"]);
    assert!(r["id"].as_str().unwrap().starts_with("resp-"), "{r}");

    for (body, param) in [
        (json!({"model": MODEL_NAME, "input": []}), "input"),
        (json!({"model": MODEL_NAME, "input": 5}), ""),
        (
            json!({"model": MODEL_NAME, "input": [{"role": "wizard", "content": "x"}]}),
            "input",
        ),
        (
            json!({"model": MODEL_NAME, "input": "x", "max_output_tokens": -1}),
            "max_tokens",
        ),
        (
            json!({"model": MODEL_NAME, "input": "x", "temperature": "hot"}),
            "",
        ),
    ] {
        let (status, v) = post(&s.url("/v1/responses"), &body).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_error_shape(&v);
        if !param.is_empty() {
            assert_eq!(v["error"]["param"], param, "{v}");
        }
    }
    let (status, v) = post(
        &s.url("/v1/responses"),
        &json!({"model": "nope", "input": "x"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
}
