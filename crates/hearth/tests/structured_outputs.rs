//! Structured outputs on the real default model: `response_format` (json_schema,
//! json_object) and vLLM's guided_choice / guided_regex hold even a 135M model to the
//! requested shape at temperature 1; invalid constraints are 400s.

mod common;

use common::{assert_error_shape, post, post_stream, run_python_sdk_script, Server, MODEL_NAME};
use serde_json::{json, Value};

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 200,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 20},
            "color": {"type": "string", "enum": ["red", "green", "blue"]},
            "age": {"type": "integer", "minimum": 0, "maximum": 120}
        },
        "required": ["name", "color", "age"],
        "additionalProperties": false
    })
}

/// Every field the schema asks for, checked one by one.
fn assert_person(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(obj.len(), 3, "exactly the three properties: {v}");
    let name = v["name"].as_str().unwrap_or_else(|| panic!("name: {v}"));
    assert!((1..=20).contains(&name.chars().count()), "name length: {v}");
    let color = v["color"].as_str().unwrap_or_else(|| panic!("color: {v}"));
    assert!(["red", "green", "blue"].contains(&color), "color: {v}");
    let age = v["age"].as_i64().unwrap_or_else(|| panic!("age: {v}"));
    assert!((0..=120).contains(&age), "age: {v}");
}

fn content(resp: &Value) -> &str {
    resp["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {resp}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn constrained_outputs_match_their_constraints() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");
    let rf = json!({"type": "json_schema",
        "json_schema": {"name": "person", "schema": person_schema(), "strict": true}});
    for seed in 1..=4 {
        let body = chat(
            "Describe a person as JSON.",
            json!({"response_format": rf, "temperature": 1.0, "seed": seed}),
        );
        let (status, resp) = post(&url, &body).await;
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp["choices"][0]["finish_reason"], "stop", "{resp}");
        assert_person(content(&resp));
    }

    // Streamed: the deltas join into the same kind of valid object.
    let body = chat(
        "Describe a person as JSON.",
        json!({"response_format": rf, "temperature": 1.0, "seed": 9, "stream": true}),
    );
    let (chunks, done) = post_stream(&url, &body).await;
    assert!(done);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_person(&text);

    let choices = ["positive", "negative", "neutral"];
    for seed in 1..=3 {
        let body = chat(
            "Is this review positive? 'Great food, slow service.'",
            json!({"guided_choice": choices, "temperature": 1.0, "seed": seed}),
        );
        let (status, resp) = post(&url, &body).await;
        assert_eq!(status, 200, "{resp}");
        assert!(choices.contains(&content(&resp)), "{resp}");
        assert_eq!(resp["choices"][0]["finish_reason"], "stop", "{resp}");
    }

    let body = chat(
        "Write any JSON object.",
        json!({"response_format": {"type": "json_object"}, "temperature": 0.7, "seed": 3,
               "max_tokens": 400}),
    );
    let (status, resp) = post(&url, &body).await;
    assert_eq!(status, 200, "{resp}");
    // Cut off by max_tokens, the text must still be the start of a JSON object (the
    // grammar cannot force an end): the parser runs out of input, nothing else.
    match serde_json::from_str::<Value>(content(&resp)) {
        Ok(v) => {
            assert!(v.is_object(), "{v}");
            assert_eq!(resp["choices"][0]["finish_reason"], "stop", "{resp}");
        }
        Err(e) => {
            assert_eq!(resp["choices"][0]["finish_reason"], "length", "{e}: {resp}");
            assert!(e.is_eof(), "not a JSON prefix ({e}): {resp}");
            assert!(content(&resp).trim_start().starts_with('{'), "{resp}");
        }
    }

    // /v1/completions with guided_regex, checked by the regex crate.
    let pattern = r"[A-Z][a-z]{2,8} [0-9]{1,3}(, [A-Z][a-z]{2,8} [0-9]{1,3})?";
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).expect("test regex");
    for seed in 1..=3 {
        let body = json!({"model": MODEL_NAME, "prompt": "Name and age:", "max_tokens": 60,
            "guided_regex": pattern, "temperature": 1.0, "seed": seed});
        let (status, resp) = post(&s.url("/v1/completions"), &body).await;
        assert_eq!(status, 200, "{resp}");
        let text = resp["choices"][0]["text"].as_str().expect("text");
        assert!(re.is_match(text), "{text:?} does not match {pattern}");
    }
    s.wait_idle(30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_constraints_are_400s_naming_the_field() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");
    let bad_schema = json!({"type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}});
    let cases = [
        (json!({"response_format": bad_schema}), "response_format"),
        (
            json!({"response_format": {"type": "yaml"}}),
            "response_format",
        ),
        (json!({"guided_regex": "(unclosed"}), "guided_regex"),
        (json!({"guided_choice": "yes"}), "guided_choice"),
        (
            json!({"guided_grammar": "start: missing_rule"}),
            "guided_grammar",
        ),
        (
            json!({"guided_regex": "a", "response_format": {"type": "json_object"}}),
            "guided_regex",
        ),
    ];
    for (extra, param) in cases {
        let (status, resp) = post(&url, &chat("hi", extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {resp}");
        assert_error_shape(&resp);
        assert_eq!(resp["error"]["type"], "invalid_request_error", "{resp}");
        assert_eq!(resp["error"]["param"], param, "{extra}: {resp}");
    }
    let body = json!({"model": MODEL_NAME, "prompt": "x", "guided_json": {"type": 5}});
    let (status, resp) = post(&s.url("/v1/completions"), &body).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "guided_json", "{resp}");
    // The server is still fine.
    let (status, _) = post(&url, &chat("hi", json!({"max_tokens": 2}))).await;
    assert_eq!(status, 200);
}

#[test]
fn openai_python_sdk_structured_outputs() {
    let s = Server::start(&[]);
    let out = run_python_sdk_script("openai", "test_structured_sdk.py", &[&s.base]);
    assert!(out.contains("structured SDK checks passed"), "{out}");
}
