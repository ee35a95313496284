//! The bad-input suite, HTTP side: hostile bodies, numbers, names, auth and Host
//! headers against a keyed server, big prompts and hostile chat templates against a
//! second one. Every case gets its status and its API's error shape, quickly, and
//! each server still answers normal requests afterwards.

mod auth_support;
mod bad_input_support;
mod common;

use auth_support::{bearer, Home};
use bad_input_support::http_cases::{field_cases, name_cases, syntax_cases, CHAT, CMPL, MSGS};
use bad_input_support::{chat, completion, messages, run, still_answers, Case};
use serde_json::json;

/// Missing, wrong, revoked, expired and out-of-scope keys; a foreign Host.
fn auth_cases(keys: &Keys) -> Vec<Case> {
    let mut cases = Vec::new();
    for path in [CHAT, MSGS] {
        let body = || {
            if path == MSGS {
                messages(json!({}))
            } else {
                chat(json!({}))
            }
        };
        let (auth_header, wrap): (&str, fn(&str) -> String) = if path == MSGS {
            ("x-api-key", |k| k.to_string())
        } else {
            ("authorization", bearer)
        };
        let with = |name: &str, key: &str, status: u16| {
            Case::post(format!("{name} key {path}"), path, body(), status)
                .header(auth_header, &wrap(key))
        };
        cases.push(
            Case::post(format!("no key {path}"), path, body(), 401).header("authorization", ""),
        );
        cases.push(with(
            "wrong",
            "hth_0000000000000000000000000000000000000000000000000000000000000000",
            401,
        ));
        cases.push(with("garbage", "Basic dXNlcjpwYXNz", 401));
        cases.push(with("revoked", &keys.revoked, 401).says("revoked"));
        cases.push(with("expired", &keys.expired, 401).says("expired"));
        cases.push(with("model-scoped", &keys.scoped, 403));
        cases.push(
            Case::post(format!("evil Host {path}"), path, body(), 403)
                .header("host", "evil.example")
                .says("not allowed"),
        );
    }
    cases.push(
        Case::post(
            "endpoint-scoped key on /v1/completions",
            CMPL,
            completion(json!({})),
            403,
        )
        .header("authorization", &bearer(&keys.chat_only)),
    );
    cases.push(
        Case::get("non-admin key on /stats", "/stats", 403)
            .header("authorization", &bearer(&keys.chat_only)),
    );
    cases
}

struct Keys {
    admin: String,
    revoked: String,
    expired: String,
    scoped: String,
    chat_only: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_clear_errors_and_the_server_survives() {
    let home = Home::new("bad-input");
    let keys = Keys {
        admin: home.create_key("ops", &["--admin"]),
        revoked: home.create_key("gone", &[]),
        expired: home.create_key("old", &["--expires", "2020-01-01"]),
        scoped: home.create_key("other", &["--models", "some-other-model"]),
        chat_only: home.create_key("chat", &["--endpoints", "/v1/chat/completions"]),
    };
    assert!(home.keys(&["revoke", "gone"]).status.success());
    let srv = home.serve(&[]);
    let auth_value = bearer(&keys.admin);
    let auth = [("authorization", auth_value.as_str())];

    let mut cases = syntax_cases();
    cases.extend(field_cases());
    cases.extend(name_cases());
    cases.extend(auth_cases(&keys));
    // A 10 MB prompt is over the default 8 MiB body limit.
    let ten_mb = "a ".repeat(5 << 20);
    let big = json!({"messages": [{"role": "user", "content": ten_mb}]});
    cases.push(Case::post(
        "10 MB prompt (chat)",
        CHAT,
        chat(big.clone()),
        413,
    ));
    cases.push(Case::post(
        "10 MB prompt (messages)",
        MSGS,
        messages(big),
        413,
    ));

    let n = run(&srv.base, &auth, &cases).await;
    eprintln!("bad-input HTTP cases against the keyed server: {n}");
    assert!(n >= 90, "{n} cases");
    still_answers(&srv.base, &auth).await;
    // The last answer is sent before the engine retires its sequence: poll briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stats: serde_json::Value = reqwest::Client::new()
            .get(srv.url("/stats"))
            .header("authorization", &auth_value)
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let (running, used) = (stats["running"].as_u64(), stats["used_blocks"].as_u64());
        if (running, used) == (Some(0), Some(0)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "requests left running: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A chat template that turns hostile when the last message asks it to.
const HOSTILE_TEMPLATE: &str = r#"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}
{% set c = messages[-1].content %}
{% if c == 'loop' %}{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}
{% elif c == 'range' %}{% for x in range(10**9) %}{{ x }}{% endfor %}
{% elif c == 'recurse' %}{{ f(0) }}
{% elif c == 'huge' %}{% for a in range(1000) %}{{ 'x' * 99999999 }}{% endfor %}
{% elif c == 'dunder' %}{{ messages.__class__.__mro__[1].__subclasses__() }}
{% elif c == 'raise' %}{{ raise_exception('no way') }}
{% else %}{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}<|im_start|>assistant
{% endif %}"#;

#[tokio::test(flavor = "multi_thread")]
async fn hostile_templates_and_big_prompts_fail_fast() {
    let dir = std::env::temp_dir().join(format!("hearth-bad-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let template = dir.join("hostile.jinja");
    std::fs::write(&template, HOSTILE_TEMPLATE).expect("write template");
    let tpl = template.to_str().expect("utf-8 path");
    let srv = common::Server::start(&["--max-body-size", "32MiB", "--chat-template", tpl]);

    let mut cases = Vec::new();
    for c in ["loop", "range", "recurse", "huge", "dunder", "raise"] {
        let body = json!({"messages": [{"role": "user", "content": c}]});
        cases.push(
            Case::post(
                format!("template {c} (chat)"),
                CHAT,
                chat(body.clone()),
                400,
            )
            .says("template"),
        );
        cases.push(Case::post(
            format!("template {c} (messages)"),
            MSGS,
            messages(body),
            400,
        ));
    }
    // Under a raised body limit a 10 MB prompt is over the context instead.
    let ten_mb = "a ".repeat(5 << 20);
    let big = json!({"messages": [{"role": "user", "content": ten_mb}]});
    cases.push(Case::post(
        "10 MB prompt over the context (chat)",
        CHAT,
        chat(big.clone()),
        400,
    ));
    cases.push(Case::post(
        "10 MB prompt over the context (messages)",
        MSGS,
        messages(big),
        400,
    ));
    let started = std::time::Instant::now();
    let n = run(&srv.base, &[], &cases).await;
    eprintln!(
        "template and big-prompt cases: {n} in {:?}",
        started.elapsed()
    );
    still_answers(&srv.base, &[]).await;
    let _ = std::fs::remove_dir_all(&dir);
}
