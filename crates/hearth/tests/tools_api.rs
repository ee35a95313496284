//! Tool calling end to end on the real default model. Its own template renders no
//! tools, so the server runs with `--chat-template` (Qwen2.5's real template, from
//! hearth-text's fixture) and `--tool-call-parser hermes`; `tool_choice` required or
//! named constrains generation, so even this small model makes schema-valid calls.

mod common;

use common::{family_template, post, post_stream, run_python_sdk_script, Server, MODEL_NAME};
use serde_json::{json, Value};

/// Qwen2.5's chat template, written to a file for `--chat-template`.
fn qwen_template() -> std::path::PathBuf {
    family_template("qwen2.5")
}

fn tool_server() -> Server {
    let t = qwen_template();
    Server::start(&[
        "--tool-call-parser",
        "hermes",
        "--chat-template",
        t.to_str().expect("utf-8 path"),
    ])
}

fn weather() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 30},
            "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"], "additionalProperties": false}}})
}

fn chat(choice: Value, stream: bool) -> Value {
    json!({"model": MODEL_NAME, "temperature": 0, "max_tokens": 60, "stream": stream,
        "messages": [{"role": "user", "content": "What is the weather in Oslo this week?"}],
        "tools": [weather(), {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["tz"], "additionalProperties": false}}}],
        "tool_choice": choice})
}

/// The arguments satisfy get_weather's schema.
fn assert_weather_args(arguments: &str) -> Value {
    let a: Value = serde_json::from_str(arguments).expect("arguments are JSON");
    let o = a.as_object().expect("an object");
    assert_eq!(o.len(), 2, "{a}");
    let city = o["city"].as_str().expect("city is a string");
    assert!(city.chars().count() <= 30, "{a}");
    let days = o["days"].as_i64().expect("days is an integer");
    assert!((1..=7).contains(&days), "{a}");
    a
}

/// Folds streamed chunks into (content, [(id, name, arguments)], finish_reason).
fn fold(chunks: &[Value]) -> (String, Vec<(String, String, String)>, String) {
    let (mut content, mut calls, mut finish) = (String::new(), Vec::new(), String::new());
    for c in chunks {
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().expect("index") as usize;
            if let Some(id) = tc["id"].as_str() {
                assert_eq!(i, calls.len());
                assert_eq!(tc["type"], "function");
                calls.push((
                    id.to_string(),
                    tc["function"]["name"].as_str().expect("name").to_string(),
                    String::new(),
                ));
            }
            calls[i]
                .2
                .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (content, calls, finish)
}

#[tokio::test]
async fn openai_forced_calls_are_schema_valid_streamed_or_not() {
    let s = tool_server();
    let url = s.url("/v1/chat/completions");
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    let (status, v) = post(&url, &chat(named.clone(), false)).await;
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert!(choice["message"]["content"].is_null(), "{v}");
    let calls = choice["message"]["tool_calls"]
        .as_array()
        .expect("tool_calls");
    assert_eq!(calls.len(), 1, "{v}");
    assert!(calls[0]["id"].as_str().expect("id").starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args = assert_weather_args(calls[0]["function"]["arguments"].as_str().expect("string"));

    let (chunks, done) = post_stream(&url, &chat(named, true)).await;
    assert!(done);
    let (content, scalls, finish) = fold(&chunks);
    assert_eq!((content.as_str(), finish.as_str()), ("", "tool_calls"));
    assert_eq!(scalls.len(), 1);
    assert_eq!(scalls[0].1, "get_weather");
    assert_eq!(
        assert_weather_args(&scalls[0].2),
        args,
        "streamed and whole agree"
    );

    let (status, v) = post(&url, &chat(json!("required"), false)).await;
    assert_eq!(status, 200, "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
    match call["name"].as_str() {
        Some("get_weather") => {
            assert_weather_args(call["arguments"].as_str().expect("arguments"));
        }
        Some("get_time") => {
            let a: Value =
                serde_json::from_str(call["arguments"].as_str().expect("s")).expect("json");
            assert!(a["tz"] == "UTC" || a["tz"] == "CET", "{a}");
        }
        other => panic!("no call: {other:?} in {v}"),
    }
    s.wait_idle(30).await;
}

#[tokio::test]
async fn openai_tool_results_round_trip_and_bad_tools_are_400() {
    let s = tool_server();
    let url = s.url("/v1/chat/completions");
    let body = json!({"model": MODEL_NAME, "temperature": 0, "max_tokens": 16, "tools": [weather()],
        "tool_choice": "none",
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"days\": 1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Snow, -3 C"}]});
    let (status, v) = post(&url, &body).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    assert!(
        v["choices"][0]["message"].get("tool_calls").is_none(),
        "{v}"
    );

    let bad_schema = json!([{"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"a": {"type": "strnig"}}}}}]);
    for (tools, choice, param) in [
        (
            json!([weather()]),
            json!({"type": "function", "function": {"name": "nope"}}),
            "tool_choice",
        ),
        (json!([weather()]), json!("sometimes"), "tool_choice"),
        (
            json!([{"type": "code_interpreter"}]),
            json!("auto"),
            "tools[0].type",
        ),
        (bad_schema, json!("auto"), "tools[0].function.parameters"),
    ] {
        let body = json!({"model": MODEL_NAME, "max_tokens": 4, "tools": tools, "tool_choice": choice,
            "messages": [{"role": "user", "content": "hi"}]});
        let (status, v) = post(&url, &body).await;
        assert_eq!(status, 400, "{v}");
        common::assert_error_shape(&v);
        assert_eq!(v["error"]["param"], param, "{v}");
    }
}

/// Without a parser (the default model's own template has none), letting the
/// model call tools is refused clearly; `tool_choice: none` still answers.
#[tokio::test]
async fn no_parser_refuses_auto_tools_but_serves_none() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");
    let mut body = json!({"model": MODEL_NAME, "max_tokens": 4, "tools": [weather()],
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, v) = post(&url, &body).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("--tool-call-parser"),
        "{v}"
    );
    body["tool_choice"] = json!("none");
    let (status, v) = post(&url, &body).await;
    assert_eq!(status, 200, "{v}");
}

/// Anthropic: a forced tool_use, whole and streamed (the exact event sequence).
#[tokio::test]
async fn anthropic_forced_tool_use_whole_and_streamed() {
    let s = tool_server();
    let url = s.url("/v1/messages");
    let body = |stream: bool| {
        json!({"model": MODEL_NAME, "max_tokens": 60, "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": "Weather in Oslo this week?"}],
            "tools": [{"name": "get_weather", "description": "Weather for a city",
                "input_schema": weather()["function"]["parameters"].clone()}],
            "tool_choice": {"type": "tool", "name": "get_weather"}})
    };
    let (status, v) = post(&url, &body(false)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let block = &v["content"][0];
    assert_eq!(
        (block["type"].as_str(), block["name"].as_str()),
        (Some("tool_use"), Some("get_weather"))
    );
    assert!(block["id"].as_str().expect("id").starts_with("toolu_"));
    assert_weather_args(&block["input"].to_string());

    let resp = reqwest::Client::new()
        .post(&url)
        .json(&body(true))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("body");
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .expect("event line");
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            (
                name.to_string(),
                serde_json::from_str(data).expect("data JSON"),
            )
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    let deltas = names.len() - 6;
    let mut want = vec!["message_start", "ping", "content_block_start"];
    want.extend(std::iter::repeat_n("content_block_delta", deltas));
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, want, "{text}");
    let start = &events[2].1;
    assert_eq!(start["index"], 0);
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    assert_eq!(start["content_block"]["input"], json!({}));
    let partial: String = events[3..3 + deltas]
        .iter()
        .map(|e| {
            assert_eq!(e.1["delta"]["type"], "input_json_delta");
            e.1["delta"]["partial_json"]
                .as_str()
                .expect("partial_json")
                .to_string()
        })
        .collect();
    let input: Value = serde_json::from_str(&partial).expect("input JSON");
    assert_eq!(input, block["input"], "streamed and whole agree");
    let md = &events[names.len() - 2].1;
    assert_eq!(md["delta"]["stop_reason"], "tool_use");
}

/// The Llama 3 path: Llama 3.2's template (tools in the first user message) and the
/// llama3_json parser; a named tool_choice gives `{"name": .., "parameters": ..}`.
#[tokio::test]
async fn llama3_json_forced_call_end_to_end() {
    let t = family_template("llama3.2");
    let s = Server::start(&[
        "--tool-call-parser",
        "llama3_json",
        "--chat-template",
        t.to_str().expect("utf-8 path"),
    ]);
    let url = s.url("/v1/chat/completions");
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    let (status, v) = post(&url, &chat(named.clone(), false)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{v}");
    let args = assert_weather_args(call["arguments"].as_str().expect("arguments"));
    let (chunks, _) = post_stream(&url, &chat(named, true)).await;
    let (content, calls, finish) = fold(&chunks);
    assert_eq!(
        (content.as_str(), finish.as_str(), calls.len()),
        ("", "tool_calls", 1)
    );
    assert_eq!(assert_weather_args(&calls[0].2), args);
}

#[test]
fn python_sdks_tool_round_trips() {
    let s = tool_server();
    let out = run_python_sdk_script("openai", "test_openai_tools_sdk.py", &[&s.base, MODEL_NAME]);
    assert!(out.contains("openai tools SDK checks passed"), "{out}");
    let out = run_python_sdk_script(
        "anthropic",
        "test_anthropic_tools_sdk.py",
        &[&s.base, MODEL_NAME],
    );
    assert!(out.contains("anthropic tools SDK checks passed"), "{out}");
}
