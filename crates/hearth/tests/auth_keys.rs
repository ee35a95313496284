//! API keys end to end: `hearth keys` on a temporary $HEARTH_HOME and a real server
//! that checks them (shapes, headers, revocation, expiry, scopes, rpm, concurrency).

mod auth_support;
mod common;

use std::time::Duration;

use auth_support::{assert_anthropic_error, bearer, chat_body, messages_body, send, Home};
use common::{assert_error_shape, MODEL_NAME};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn keys_are_required_in_each_api_shape_and_both_headers_work() {
    let home = Home::new("shapes");
    let key = home.create_key("svc", &[]);
    let admin = home.create_key("ops", &["--admin"]);
    let srv = home.serve(&[]);
    let chat = srv.url("/v1/chat/completions");
    let msgs = srv.url("/v1/messages");

    // No key, a wrong key: 401 in OpenAI's shape...
    for headers in [vec![], vec![("authorization", "Bearer hth_wrong")]] {
        let a = send("POST", &chat, &headers, Some(&chat_body(2))).await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert_error_shape(&a.body);
        assert_eq!(a.body["error"]["code"], "invalid_api_key");
        assert_eq!(a.headers["www-authenticate"], "Bearer");
    }
    // ... and in Anthropic's for /v1/messages*.
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let a = send(
            "POST",
            &srv.url(path),
            &[("x-api-key", "nope")],
            Some(&messages_body(2)),
        )
        .await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert_anthropic_error(&a.body, "authentication_error");
    }
    let a = send("GET", &srv.url("/v1/models"), &[], None).await;
    assert_eq!(a.status, 401);

    // Bearer and x-api-key are both accepted, on both APIs.
    let a = send(
        "POST",
        &chat,
        &[("authorization", &bearer(&key))],
        Some(&chat_body(2)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["object"], "chat.completion");
    let a = send("POST", &chat, &[("x-api-key", &key)], Some(&chat_body(2))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = send(
        "POST",
        &msgs,
        &[("x-api-key", &key)],
        Some(&messages_body(2)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["type"], "message");
    let a = send(
        "POST",
        &msgs,
        &[("authorization", &bearer(&key))],
        Some(&messages_body(2)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // /health stays open; /stats needs an admin key.
    assert_eq!(
        send("GET", &srv.url("/health"), &[], None).await.status,
        200
    );
    assert_eq!(send("GET", &srv.url("/stats"), &[], None).await.status, 401);
    let a = send(
        "GET",
        &srv.url("/stats"),
        &[("authorization", &bearer(&key))],
        None,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin"));
    let a = send(
        "GET",
        &srv.url("/stats"),
        &[("authorization", &bearer(&admin))],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["total_blocks"].is_number());
}

#[test]
fn key_list_never_shows_the_key_or_its_hash() {
    let home = Home::new("list");
    let a = home.create_key(
        "svc-a",
        &[
            "--models",
            "m1,m2",
            "--rpm",
            "30",
            "--expires",
            "2099-01-31",
        ],
    );
    let b = home.create_key(
        "svc-b",
        &["--admin", "--max-concurrency", "2", "--log-content"],
    );
    let out = home.keys(&["list"]);
    assert!(out.status.success(), "{out:?}");
    let list = String::from_utf8(out.stdout).unwrap();
    for (name, key) in [("svc-a", &a), ("svc-b", &b)] {
        let line = list
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(line.contains(&key[..12]), "prefix shown: {line}");
        assert!(!list.contains(key.as_str()), "the key is listed: {list}");
        assert!(
            !list.contains(&key[12..20]),
            "more than the prefix is listed: {list}"
        );
    }
    let a_line = list.lines().find(|l| l.starts_with("svc-a")).unwrap();
    assert!(a_line.contains("m1,m2") && a_line.contains("30") && a_line.contains("2099-02-01"));
    let b_line = list.lines().find(|l| l.starts_with("svc-b")).unwrap();
    assert!(b_line.contains("yes"), "{b_line}");
    // The store keeps no key either.
    let mut stored = std::fs::read(home.0.join("keys.sqlite")).unwrap();
    stored.extend(std::fs::read(home.0.join("keys.sqlite-wal")).unwrap_or_default());
    for key in [&a, &b] {
        assert!(!stored.windows(key.len()).any(|w| w == key.as_bytes()));
    }
    // Names are unique; a revoked name can be reissued; bad input is refused.
    let dup = home.keys(&["create", "--name", "svc-a"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    assert!(home.keys(&["revoke", "svc-a"]).status.success());
    assert!(!home.keys(&["revoke", "svc-a"]).status.success());
    home.create_key("svc-a", &[]);
    let bad = home.keys(&["create", "--name", "x", "--expires", "31/12/2026"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("2026-12-31"));
}

#[tokio::test]
async fn revocation_and_new_keys_act_without_a_restart() {
    let home = Home::new("revoke");
    // Keys required from the start, while the store is still empty.
    let srv = home.serve(&["--require-api-key"]);
    let chat = srv.url("/v1/chat/completions");
    assert_eq!(
        send("POST", &chat, &[], Some(&chat_body(1))).await.status,
        401
    );
    let key = home.create_key("svc", &[]);
    let auth = [("authorization", bearer(&key))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = send("POST", &chat, &auth, Some(&chat_body(1))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(home.keys(&["revoke", "svc"]).status.success());
    let a = send("POST", &chat, &auth, Some(&chat_body(1))).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
}

#[tokio::test]
async fn expired_key_is_401() {
    let home = Home::new("expired");
    let old = home.create_key("old", &["--expires", "2020-01-01"]);
    let fresh = home.create_key("fresh", &["--expires", "2099-12-31"]);
    let srv = home.serve(&[]);
    let url = srv.url("/v1/models");
    let a = send("GET", &url, &[("authorization", &bearer(&old))], None).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let a = send(
        "POST",
        &srv.url("/v1/messages"),
        &[("x-api-key", &old)],
        Some(&messages_body(1)),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_anthropic_error(&a.body, "authentication_error");
    assert_eq!(
        send("GET", &url, &[("authorization", &bearer(&fresh))], None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn model_and_endpoint_scopes_are_403() {
    let home = Home::new("scopes");
    let other = home.create_key("other-model", &["--models", "some-other-model"]);
    let this = home.create_key("this-model", &["--models", MODEL_NAME]);
    let only_completions = home.create_key("completions", &["--endpoints", "/v1/completions"]);
    let srv = home.serve(&[]);
    let chat = srv.url("/v1/chat/completions");

    let a = send(
        "POST",
        &chat,
        &[("authorization", &bearer(&other))],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_error_shape(&a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(MODEL_NAME));
    let a = send(
        "POST",
        &srv.url("/v1/messages"),
        &[("x-api-key", &other)],
        Some(&messages_body(1)),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_anthropic_error(&a.body, "permission_error");
    let model_url = srv.url(&format!("/v1/models/{MODEL_NAME}"));
    assert_eq!(
        send(
            "GET",
            &model_url,
            &[("authorization", &bearer(&other))],
            None
        )
        .await
        .status,
        403
    );
    // The listing shows a scoped key only its models.
    let models = srv.url("/v1/models");
    let a = send("GET", &models, &[("authorization", &bearer(&other))], None).await;
    assert_eq!(
        (a.status, a.body["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{}",
        a.body
    );
    let a = send("GET", &models, &[("authorization", &bearer(&this))], None).await;
    assert_eq!(a.body["data"][0]["id"], MODEL_NAME, "{}", a.body);
    // A body whose model cannot be read is refused, not trusted.
    let a = send(
        "POST",
        &chat,
        &[("authorization", &bearer(&other))],
        Some(&json!({"model": 5})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);

    let a = send(
        "POST",
        &chat,
        &[("authorization", &bearer(&this))],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        send(
            "GET",
            &model_url,
            &[("authorization", &bearer(&this))],
            None
        )
        .await
        .status,
        200
    );

    let a = send(
        "POST",
        &chat,
        &[("authorization", &bearer(&only_completions))],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let body = json!({"model": MODEL_NAME, "prompt": "Hi", "max_tokens": 1});
    let a = send(
        "POST",
        &srv.url("/v1/completions"),
        &[("authorization", &bearer(&only_completions))],
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn rpm_limit_is_429_with_retry_after() {
    let home = Home::new("rpm");
    let key = home.create_key("slow", &["--rpm", "2"]);
    let other = home.create_key("free", &[]);
    let srv = home.serve(&[]);
    let url = srv.url("/v1/models");
    let auth = bearer(&key);
    for _ in 0..2 {
        assert_eq!(
            send("GET", &url, &[("authorization", &auth)], None)
                .await
                .status,
            200
        );
    }
    let a = send("GET", &url, &[("authorization", &auth)], None).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_error_shape(&a.body);
    assert_eq!(a.body["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // Anthropic's shape for its routes; another key is not affected.
    let a = send(
        "POST",
        &srv.url("/v1/messages"),
        &[("x-api-key", &key)],
        Some(&messages_body(1)),
    )
    .await;
    assert_eq!(a.status, 429);
    assert_anthropic_error(&a.body, "rate_limit_error");
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(
        send("GET", &url, &[("authorization", &bearer(&other))], None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn max_concurrency_holds_until_the_stream_ends() {
    let home = Home::new("concurrency");
    let key = home.create_key("one-at-a-time", &["--max-concurrency", "1"]);
    let srv = home.serve(&[]);
    let chat = srv.url("/v1/chat/completions");
    let auth = bearer(&key);
    let mut body = chat_body(200);
    body["stream"] = json!(true);
    body["ignore_eos"] = json!(true);
    let first = reqwest::Client::new()
        .post(&chat)
        .header("authorization", &auth)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let mut stream = first.bytes_stream();
    // The stream has started: its slot is taken.
    let chunk = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .unwrap();
    assert!(chunk.is_some());
    let a = send(
        "POST",
        &chat,
        &[("authorization", &auth)],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.headers["retry-after"], "1");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent"));
    // Reading the stream to its end frees the slot.
    let mut rest = String::new();
    while let Some(c) = stream.next().await {
        rest.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    assert!(rest.contains("[DONE]"));
    let a = send(
        "POST",
        &chat,
        &[("authorization", &auth)],
        Some(&chat_body(1)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn official_sdks_work_with_a_keyed_server() {
    let home = Home::new("sdk");
    let key = home.create_key("sdk", &[]);
    let scoped = home.create_key("sdk-scoped", &["--models", "some-other-model"]);
    let srv = home.serve(&[]);
    let base = srv.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        common::run_python_sdk_script(
            "openai",
            "test_sdk_api_keys.py",
            &[&base, MODEL_NAME, &key, &scoped],
        )
    })
    .await
    .unwrap();
    assert!(
        out.contains("openai ok") && out.contains("anthropic ok"),
        "{out}"
    );
}
