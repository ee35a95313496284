//! The keyed server's cases that need no keys: hostile bodies, wrong types, numbers
//! out of range, unknown and path-traversal model names.

use serde_json::json;

use super::{chat, completion, messages, Body, Case};
use crate::common::MODEL_NAME;

pub const CHAT: &str = "/v1/chat/completions";
pub const MSGS: &str = "/v1/messages";
pub const CMPL: &str = "/v1/completions";

pub fn raw(bytes: impl Into<Vec<u8>>) -> Body {
    Body::Raw(bytes.into())
}

/// Malformed, truncated, nested and non-UTF-8 bodies on each JSON endpoint.
pub fn syntax_cases() -> Vec<Case> {
    let nested = "[".repeat(100_000);
    let nested_obj = format!(
        "{{\"model\":\"{MODEL_NAME}\",\"messages\":{}",
        "{\"a\":".repeat(50_000)
    );
    let mut bad_utf8 =
        format!("{{\"model\":\"{MODEL_NAME}\",\"messages\":[{{\"role\":\"user\",\"content\":\"")
            .into_bytes();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    bad_utf8.extend_from_slice(b"\"}]}");
    let mut cases = Vec::new();
    for path in [
        CHAT,
        MSGS,
        CMPL,
        "/v1/responses",
        "/v1/messages/count_tokens",
    ] {
        cases.push(Case::post(
            format!("malformed {path}"),
            path,
            raw("{\"model\": "),
            400,
        ));
        cases.push(Case::post(
            format!("not JSON {path}"),
            path,
            raw("hello"),
            400,
        ));
        cases.push(Case::post(
            format!("100k [ {path}"),
            path,
            raw(nested.clone()),
            400,
        ));
    }
    for path in [CHAT, MSGS] {
        cases.extend([
            Case::post(
                format!("truncated {path}"),
                path,
                raw(&b"{\"model\":\"test-model\",\"messages\":[{\"role\":\"us"[..]),
                400,
            ),
            Case::post(
                format!("50k nested objects {path}"),
                path,
                raw(nested_obj.clone()),
                400,
            ),
            Case::post(
                format!("invalid UTF-8 {path}"),
                path,
                raw(bad_utf8.clone()),
                400,
            ),
            Case::post(
                format!("raw NUL byte {path}"),
                path,
                raw(&b"{\"model\":\"test-model\"\0}"[..]),
                400,
            ),
            Case::post(format!("empty body {path}"), path, raw(""), 400),
            Case::post(format!("JSON array body {path}"), path, raw("[1,2,3]"), 400),
        ]);
    }
    cases.push(
        Case::post("text/plain, no body", CHAT, Body::None, 400)
            .header("content-type", "text/plain"),
    );
    // Numbers past f64 are a JSON error, not an infinity.
    let inf = format!("{{\"model\":\"{MODEL_NAME}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"temperature\":1e400}}");
    cases.push(Case::post("temperature 1e400", CHAT, raw(inf.clone()), 400));
    cases.push(Case::post(
        "temperature 1e400 (messages)",
        MSGS,
        raw(inf.replace("\"messages\"", "\"max_tokens\":4,\"messages\"")),
        400,
    ));
    cases
}

/// Wrong types for the main fields, and numbers out of range.
pub fn field_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let wrong_chat = [
        ("model", json!(42)),
        ("messages", json!("hi")),
        ("messages", json!([{"role": 7, "content": "x"}])),
        ("messages", json!([{"role": "user", "content": {"a": 1}}])),
        ("max_tokens", json!("ten")),
        ("max_tokens", json!(1e30)),
        ("max_tokens", json!(-5)),
        ("max_tokens", json!(4.5)),
        ("temperature", json!("NaN")),
        ("temperature", json!("inf")),
        ("temperature", json!(-1)),
        ("top_p", json!([1])),
        ("top_p", json!(2)),
        ("n", json!(1_000_000)),
        ("n", json!(-1)),
        ("stream", json!("yes")),
        ("stop", json!(12)),
        ("seed", json!("x")),
        ("logit_bias", json!([1, 2])),
        ("tools", json!("all")),
        ("tool_choice", json!(3)),
        ("response_format", json!({"type": "nonsense"})),
    ];
    for (field, v) in wrong_chat {
        let name = format!("chat {field}={v}");
        cases.push(Case::post(name, CHAT, chat(json!({ field: v })), 400));
    }
    let wrong_msgs = [
        ("max_tokens", json!("ten")),
        ("max_tokens", json!(-5)),
        ("max_tokens", json!(1e30)),
        ("messages", json!({"role": "user"})),
        ("system", json!(5)),
        ("temperature", json!("NaN")),
        ("tools", json!([{"name": 5}])),
    ];
    for (field, v) in wrong_msgs {
        let name = format!("messages {field}={v}");
        cases.push(Case::post(name, MSGS, messages(json!({ field: v })), 400));
    }
    for (field, v) in [
        ("prompt", json!({"a": 1})),
        ("max_tokens", json!(-5)),
        ("prompt", json!([1e30])),
    ] {
        let name = format!("completions {field}={v}");
        cases.push(Case::post(name, CMPL, completion(json!({ field: v })), 400));
    }
    // Missing max_tokens is an error in Anthropic's API.
    let no_max = json!({"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}]});
    cases.push(Case::post(
        "messages without max_tokens",
        MSGS,
        Body::Json(no_max),
        400,
    ));
    let tool =
        json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    cases.push(
        Case::post(
            "129 tools",
            CHAT,
            chat(json!({"tools": vec![tool; 129]})),
            400,
        )
        .says("tools"),
    );
    cases
}

/// Unknown and path-traversal model names, NUL bytes in names and text.
pub fn name_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for model in [
        "no-such-model",
        "../../etc/passwd",
        "/etc/passwd",
        "test-model\u{0}",
        "..\\..\\x",
        "",
    ] {
        cases.push(Case::post(
            format!("chat model {model:?}"),
            CHAT,
            chat(json!({"model": model})),
            404,
        ));
        cases.push(Case::post(
            format!("messages model {model:?}"),
            MSGS,
            messages(json!({"model": model})),
            404,
        ));
    }
    for path in [
        "/v1/models/..%2F..%2Fetc%2Fpasswd",
        "/v1/models/no-such-model",
        "/v1/models/%00",
    ] {
        cases.push(Case::get(format!("GET {path}"), path, 404));
    }
    cases.push(Case::get(
        "GET /v1/../../etc/passwd",
        "/v1/%2e%2e/%2e%2e/etc/passwd",
        404,
    ));
    cases
}
