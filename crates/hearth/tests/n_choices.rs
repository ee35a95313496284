//! `n` > 1 on the real model: n choices with their own indices and seeds, the prompt
//! computed once (the other choices reuse its KV blocks), streamed and not.

mod common;

use common::{assert_error_shape, post, post_stream, Server, MODEL_NAME};
use serde_json::{json, Value};

const PROMPT: &str = "Write one line about the sea. The sea is wide and deep, the waves \
    roll in from far away, the gulls cry over the harbour and the boats come home at dusk.";

fn chat(n: i64, stream: bool) -> Value {
    json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 1.0, "seed": 7, "max_tokens": 8, "n": n,
        "stream": stream, "stream_options": {"include_usage": true},
    })
}

fn texts(v: &Value) -> Vec<String> {
    let choices = v["choices"].as_array().expect("choices");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v}");
        assert!(c["finish_reason"].is_string(), "{v}");
    }
    choices
        .iter()
        .map(|c| {
            c["message"]["content"]
                .as_str()
                .expect("content")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn n_choices_share_the_prompt_and_stream_with_indices() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");

    let (status, v) = post(&url, &chat(3, false)).await;
    assert_eq!(status, 200, "{v}");
    let three = texts(&v);
    assert_eq!(three.len(), 3);
    // Each choice has its own seed: they are not all the same answer.
    assert!(three.iter().any(|t| t != &three[0]), "{three:?}");
    let usage = &v["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 32, "{usage}");
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((3..=24).contains(&completion), "{usage}");
    // A fresh prompt, yet cached tokens: choices 1 and 2 reused choice 0's blocks.
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached >= 16 && cached < prompt, "{usage}");

    // Seeded: the same request gives the same choices; choice 0 equals n=1's answer.
    let (_, again) = post(&url, &chat(3, false)).await;
    assert_eq!(texts(&again), three);
    let (_, one) = post(&url, &chat(1, false)).await;
    assert_eq!(texts(&one), vec![three[0].clone()]);

    // Streamed: chunks of both choices, each ending with a finish reason, the texts
    // equal the non-streamed ones, one usage chunk at the end.
    let (chunks, done) = post_stream(&url, &chat(2, true)).await;
    assert!(done);
    let mut streamed = [String::new(), String::new()];
    let mut finished = [false, false];
    for c in &chunks {
        for choice in c["choices"].as_array().expect("choices") {
            let i = choice["index"].as_u64().expect("index") as usize;
            if let Some(t) = choice["delta"]["content"].as_str() {
                streamed[i].push_str(t);
            }
            finished[i] |= choice["finish_reason"].is_string();
        }
    }
    assert_eq!(finished, [true, true]);
    assert_eq!(streamed.to_vec(), three[..2].to_vec());
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["choices"].as_array().map(Vec::len), Some(0), "{last}");
    assert_eq!(last["usage"]["prompt_tokens"], prompt);

    // Completions take n too.
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"model": MODEL_NAME, "prompt": PROMPT, "n": 2, "max_tokens": 4,
                "temperature": 1.0, "seed": 3}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    assert_eq!(
        (choices[0]["index"].clone(), choices[1]["index"].clone()),
        (json!(0), json!(1))
    );

    for n in [0, -1, 17] {
        let (status, v) = post(&url, &chat(n, false)).await;
        assert_eq!(status, 400, "n={n}: {v}");
        assert_error_shape(&v);
        assert_eq!(v["error"]["param"], "n", "{v}");
    }
}
