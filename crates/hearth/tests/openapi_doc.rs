//! GET /openapi.json: generated from the handlers, it lists every route with its
//! request schema, and every route it lists is served.

mod common;

use common::{Server, MODEL_NAME};
use serde_json::Value;

const ROUTES: [(&str, &str); 15] = [
    ("get", "/v1/models"),
    ("get", "/v1/models/{model}"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/completions"),
    ("post", "/v1/responses"),
    ("post", "/v1/messages"),
    ("post", "/v1/messages/count_tokens"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/version"),
    ("get", "/stats"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/assets/{name}"),
];

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_matches_the_served_routes() {
    let s = Server::start(&[]);
    let doc: Value = reqwest::get(s.url("/openapi.json"))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert!(
        doc["openapi"].as_str().expect("version").starts_with("3."),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(paths[path].get(method).is_some(), "{method} {path} missing");
    }
    let ops: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        ops,
        ROUTES.len(),
        "undocumented extras or missing ones: {paths:?}"
    );

    // Request bodies come from the request types, flattened fields included.
    let schemas = &doc["components"]["schemas"];
    let chat = properties(schemas, "ChatCompletionRequest");
    for field in [
        "model",
        "messages",
        "temperature",
        "n",
        "logit_bias",
        "tools",
        "response_format",
        "stream",
    ] {
        assert!(
            chat.contains(&field.to_string()),
            "ChatCompletionRequest lacks {field}: {chat:?}"
        );
    }
    let body = &paths["/v1/chat/completions"]["post"]["requestBody"];
    assert!(body.to_string().contains("ChatCompletionRequest"), "{body}");
    assert!(schemas["MessagesRequest"].is_object(), "{schemas}");
    assert!(schemas["ResponsesRequest"].is_object(), "{schemas}");

    // Every documented operation is served (none falls through to "no such route").
    let client = reqwest::Client::new();
    for (path, item) in paths {
        let concrete = path
            .replace("{model}", MODEL_NAME)
            .replace("{name}", "app.js");
        for method in item.as_object().expect("operations").keys() {
            let req = match method.as_str() {
                "get" => client.get(s.url(&concrete)),
                "post" => client.post(s.url(&concrete)).json(&serde_json::json!({})),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            assert!(
                !text.contains("no such route"),
                "{method} {path}: {status} {text}"
            );
            assert_ne!(status, 405, "{method} {path}");
        }
    }
}

/// A schema's property names, through `allOf` parts and `$ref`s (serde's flatten).
fn properties(schemas: &Value, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![schemas[name].clone()];
    while let Some(schema) = todo.pop() {
        if let Some(r) = schema["$ref"].as_str() {
            let target = r.rsplit('/').next().expect("ref name");
            todo.push(schemas[target].clone());
        }
        if let Some(parts) = schema["allOf"].as_array() {
            todo.extend(parts.iter().cloned());
        }
        if let Some(props) = schema["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
    }
    out
}
