//! The OpenAI API end to end against the real model.

mod common;

use common::{post, post_stream, Server, MODEL_NAME};
use serde_json::{json, Value};

fn chat_body(extra: Value) -> Value {
    let mut b = json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 12,
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn models_health_chat_and_completions() {
    let s = Server::start(&[]);

    let health = reqwest::get(s.url("/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let models: Value = reqwest::get(s.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL_NAME);
    assert_eq!(models["data"][0]["object"], "model");

    // Non-streaming chat: greedy, cut by max_tokens.
    let (status, v) = post(&s.url("/v1/chat/completions"), &chat_body(json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], MODEL_NAME);
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    let finish = choice["finish_reason"].as_str().unwrap();
    let usage = &v["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
    match finish {
        "length" => assert_eq!(completion, 12),
        "stop" => assert!(completion <= 12),
        other => panic!("finish_reason {other}"),
    }

    // Streaming chat: role first, same greedy text, finish chunk, usage chunk, [DONE].
    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let (chunks, done) = post_stream(&s.url("/v1/chat/completions"), &body).await;
    assert!(done, "stream did not end with [DONE]");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        streamed, text,
        "streamed text differs from the non-streamed one"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["completion_tokens"].as_u64().unwrap(),
        completion
    );
    let fin = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(fin["finish_reason"], finish);
    let with_finish = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .count();
    assert_eq!(with_finish, 1);

    // Without include_usage there is no usage chunk.
    let (chunks, done) = post_stream(
        &s.url("/v1/chat/completions"),
        &chat_body(json!({"stream": true})),
    )
    .await;
    assert!(done);
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));

    // A stop string taken from the greedy answer cuts it there and is not included.
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() >= 3 {
        let stop = words[2];
        let (_, v) = post(
            &s.url("/v1/chat/completions"),
            &chat_body(json!({"stop": [stop]})),
        )
        .await;
        let cut = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        assert_eq!(cut, &text[..text.find(stop).unwrap()]);
    }

    // Completions: text prompt, and the same prompt as token ids.
    let body = json!({"model": MODEL_NAME, "prompt": "The capital of France is", "max_tokens": 5, "temperature": 0});
    let (status, v) = post(&s.url("/v1/completions"), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let text_out = v["choices"][0]["text"].as_str().unwrap().to_string();
    let body = json!({"model": MODEL_NAME, "prompt": [504, 3575, 282, 4649, 314], "max_tokens": 5,
                      "temperature": 0, "ignore_eos": true});
    let (status, v) = post(&s.url("/v1/completions"), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert!(!text_out.is_empty());

    // Streaming completions.
    let body = json!({"model": MODEL_NAME, "prompt": "The capital of France is", "max_tokens": 5,
                      "temperature": 0, "stream": true});
    let (chunks, done) = post_stream(&s.url("/v1/completions"), &body).await;
    assert!(done);
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, text_out);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}
