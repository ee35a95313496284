//! The audit log end to end: `hearth serve` records every request, `hearth audit`
//! exports and erases while it runs, content logging and its retention, kill -9,
//! a full database and fail-closed.

mod audit_support;
mod common;

use std::time::{Duration, Instant};

use audit_support::*;
use common::{assert_error_shape, MODEL_NAME};
use serde_json::{json, Value};

const SECRET: &str = "zebra-quartz-4411";

fn chat(extra: Value) -> Value {
    let mut b = json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": format!("Say hello. {SECRET}")}],
        "temperature": 0,
        "max_tokens": 8,
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn anthropic() -> Value {
    json!({
        "model": MODEL_NAME,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": format!("Hi {SECRET}")}],
        "metadata": {"user_id": "dave"},
    })
}

/// The record matches the endpoint, status and (when given) the usage.
fn check(rec: &Value, endpoint: &str, status: u16, usage: Option<(&Value, &Value)>) {
    assert_eq!(rec["endpoint"], endpoint, "{rec}");
    assert_eq!(rec["status"], status, "{rec}");
    assert_eq!(rec["completed"], true, "{rec}");
    assert!(rec["time"].as_str().unwrap().ends_with('Z'), "{rec}");
    if let Some((prompt, completion)) = usage {
        assert_eq!(rec["model"], MODEL_NAME, "{rec}");
        assert_eq!(&rec["prompt_tokens"], prompt, "{rec}");
        assert_eq!(&rec["completion_tokens"], completion, "{rec}");
        assert!(rec["finish_reason"].is_string(), "{rec}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_recorded_without_content_by_default() {
    let home = temp_home("default");
    let s = serve(&home, &[]);
    let c = post_json(
        &s,
        "/v1/chat/completions",
        &chat(json!({"user": "alice"})),
        &[],
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let cv = c.json();
    let body = json!({"model": MODEL_NAME, "prompt": format!("Once {SECRET}"), "max_tokens": 5});
    let p = post_json(&s, "/v1/completions", &body, &[]).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let pv = p.json();
    let streamed = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let st = post_json(
        &s,
        "/v1/chat/completions",
        &streamed,
        &[("x-hearth-subject", "carol")],
    )
    .await;
    assert_eq!(st.status, 200);
    let usage_chunk: Value = common::sse_payloads(&st.text)
        .iter()
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .find(|c| c["usage"].is_object())
        .expect("usage chunk");
    let a = post_json(
        &s,
        "/v1/messages",
        &anthropic(),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let av = a.json();
    let missing = post_json(
        &s,
        "/v1/chat/completions",
        &chat(json!({"model": "nope"})),
        &[],
    )
    .await;
    assert_eq!(missing.status, 404);
    let no_route = get(&s, "/v2/whatever", &[]).await;
    assert_eq!(no_route.status, 404);

    let ids = [&c, &p, &st, &a, &missing, &no_route].map(|r| r.request_id.as_str());
    let recs = wait_records(&home, &ids);
    let u = |v: &Value, p: &str, c: &str| (v["usage"][p].clone(), v["usage"][c].clone());
    let (cp, cc) = u(&cv, "prompt_tokens", "completion_tokens");
    check(&recs[0], "/v1/chat/completions", 200, Some((&cp, &cc)));
    assert_eq!(recs[0]["subject"], "alice");
    assert_eq!(recs[0]["method"], "POST");
    assert!(recs[0]["latency_ms"].is_u64() && recs[0]["ttft_ms"].is_u64());
    let (pp, pc) = u(&pv, "prompt_tokens", "completion_tokens");
    check(&recs[1], "/v1/completions", 200, Some((&pp, &pc)));
    let (sp, sc) = u(&usage_chunk, "prompt_tokens", "completion_tokens");
    check(&recs[2], "/v1/chat/completions", 200, Some((&sp, &sc)));
    assert_eq!(recs[2]["subject"], "carol");
    let (ap, ac) = u(&av, "input_tokens", "output_tokens");
    check(&recs[3], "/v1/messages", 200, Some((&ap, &ac)));
    assert_eq!(recs[3]["subject"], "dave");
    check(&recs[4], "/v1/chat/completions", 404, None);
    check(&recs[5], "/v2/whatever", 404, None);
    assert_eq!(recs[5]["method"], "GET");
    // No content anywhere.
    let (raw, _) = export(&home, &[]);
    assert!(!raw.contains(SECRET), "prompt text in the audit log: {raw}");
    assert!(recs
        .iter()
        .all(|r| r.get("request_body").is_none() && r.get("output_text").is_none()));
    // Filters.
    let (_, alice) = export(&home, &["--subject", "alice"]);
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0]["request_id"], c.request_id);
    let (_, none) = export(&home, &["--since", "2999-01-01T00:00:00Z"]);
    assert!(none.is_empty());
    let (_, before) = export(&home, &["--until", "2000-01-01"]);
    assert!(before.is_empty());
    let (ok, _, err) = audit_cli(&home, &["export", "--since", "last tuesday"]);
    assert!(!ok && err.contains("RFC 3339"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn content_logging_keeps_prompt_and_output() {
    let home = temp_home("content");
    let s = serve(&home, &["--audit-log-content"]);
    let c = post_json(&s, "/v1/chat/completions", &chat(json!({})), &[]).await;
    assert_eq!(c.status, 200, "{}", c.text);
    let text = c.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let st = post_json(
        &s,
        "/v1/chat/completions",
        &chat(json!({"stream": true})),
        &[],
    )
    .await;
    assert_eq!(st.status, 200);
    let a = post_json(
        &s,
        "/v1/messages",
        &anthropic(),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let recs = wait_records(&home, &[&c.request_id, &st.request_id, &a.request_id]);
    for r in &recs {
        assert!(r["request_body"].as_str().unwrap().contains(SECRET), "{r}");
    }
    assert_eq!(recs[0]["output_text"], text);
    assert_eq!(recs[1]["output_text"], streamed_text(&st.text));
    let a_text = a.json()["content"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(recs[2]["output_text"], a_text);
}

#[tokio::test(flavor = "multi_thread")]
async fn content_is_swept_after_retention_and_metadata_stays() {
    let home = temp_home("retention");
    let flags = [
        "--audit-log-content",
        "--audit-content-retention",
        "4s",
        "--audit-sweep-interval",
        "200ms",
    ];
    let s = serve(&home, &flags);
    let c = post_json(&s, "/v1/chat/completions", &chat(json!({})), &[]).await;
    assert_eq!(c.status, 200, "{}", c.text);
    let rec = &wait_records(&home, &[&c.request_id])[0];
    assert!(
        rec["request_body"].as_str().unwrap().contains(SECRET),
        "{rec}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rec = &wait_records(&home, &[&c.request_id])[0];
        if rec.get("request_body").is_none() {
            assert!(rec.get("output_text").is_none(), "{rec}");
            assert!(rec["prompt_tokens"].as_u64().unwrap() > 0);
            assert_eq!(rec["status"], 200);
            break;
        }
        assert!(Instant::now() < deadline, "content never swept: {rec}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (raw, _) = export(&home, &[]);
    assert!(!raw.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_on_a_live_server_removes_only_that_subject() {
    let home = temp_home("purge");
    let s = serve(&home, &["--audit-log-content"]);
    let x1 = post_json(&s, "/v1/chat/completions", &chat(json!({"user": "x"})), &[]).await;
    let x2 = get(&s, "/v1/models", &[("x-hearth-subject", "x")]).await;
    let y = post_json(&s, "/v1/chat/completions", &chat(json!({"user": "y"})), &[]).await;
    assert_eq!((x1.status, x2.status, y.status), (200, 200, 200));
    wait_records(&home, &[&x1.request_id, &x2.request_id, &y.request_id]);
    let (ok, out, err) = audit_cli(&home, &["purge", "--subject", "x"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2");
    let (_, recs) = export(&home, &[]);
    assert!(recs.iter().all(|r| r["subject"] != "x"), "{recs:?}");
    assert!(recs.iter().any(|r| r["request_id"] == y.request_id));
    // The server goes on recording.
    let after = get(&s, "/v1/models", &[]).await;
    wait_records(&home, &[&after.request_id, &y.request_id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_kill_9() {
    let home = temp_home("kill9");
    let s = serve(&home, &[]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = post_json(
            &s,
            "/v1/chat/completions",
            &chat(json!({"user": format!("u{i}")})),
            &[],
        )
        .await;
        assert_eq!(r.status, 200);
        ids.push(r.request_id);
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_records(&home, &id_refs);
    // Dropping the server sends SIGKILL: no shutdown, no checkpoint.
    drop(s);
    let recs = wait_records(&home, &id_refs);
    assert!(recs
        .iter()
        .all(|r| r["status"] == 200 && r["completion_tokens"].as_u64().unwrap() > 0));
    // A new server opens the same log and adds to it.
    let s = serve(&home, &[]);
    let r = get(&s, "/v1/models", &[]).await;
    let mut all = id_refs.clone();
    all.push(&r.request_id);
    wait_records(&home, &all);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_audit_db_is_reported_and_fail_closed_refuses_until_it_recovers() {
    let home = temp_home("full");
    let s = serve(&home, &["--audit-max-size", "1", "--audit-fail-closed"]);
    // Fill the capped database with health checks (subject "filler").
    let mut failing = false;
    for _ in 0..2000 {
        let h = get(&s, "/health", &[("x-hearth-subject", "filler")]).await;
        assert_eq!(h.status, 200);
        if h.json()["audit"] == "failing" {
            failing = true;
            break;
        }
    }
    assert!(failing, "the audit log never reported the full database");
    let stats = get(&s, "/stats", &[]).await.json();
    assert_eq!(stats["audit"]["status"], "failing", "{stats}");
    assert!(stats["audit"]["write_errors"].as_u64().unwrap() >= 1);
    assert!(stats["audit"]["last_error"]
        .as_str()
        .unwrap()
        .contains("full"));
    let ready = get(&s, "/ready", &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "audit log failing");
    let refused = post_json(&s, "/v1/chat/completions", &chat(json!({})), &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_error_shape(&refused.json());
    let refused = post_json(&s, "/v1/messages", &anthropic(), &[]).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["type"], "error", "{}", refused.text);
    // Erasure frees space; the writer's retry succeeds and requests pass again.
    let (ok, out, err) = audit_cli(&home, &["purge", "--subject", "filler"]);
    assert!(ok, "{err}");
    assert!(out.trim().parse::<u64>().unwrap() > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&s, "/health", &[]).await.json()["audit"] != "ok" {
        assert!(Instant::now() < deadline, "the audit log never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&s, "/ready", &[]).await.status, 200);
    let c = post_json(&s, "/v1/chat/completions", &chat(json!({})), &[]).await;
    assert_eq!(c.status, 200, "{}", c.text);
}

/// `hearth keys create` in `home`; returns the key.
fn create_key(home: &std::path::Path, name: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["keys", "create", "--name", name])
        .args(extra)
        .env("HEARTH_HOME", home)
        .env("RUST_LOG", "warn")
        .output()
        .expect("hearth keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_are_recorded_and_a_key_can_turn_on_content_logging() {
    let home = temp_home("keys");
    let plain = create_key(&home, "plain", &[]);
    let logged = create_key(&home, "logged", &["--log-content"]);
    let s = serve(&home, &[]);
    let anon = post_json(&s, "/v1/chat/completions", &chat(json!({})), &[]).await;
    assert_eq!(anon.status, 401, "{}", anon.text);
    let auth = |k: &str| format!("Bearer {k}");
    let p = post_json(
        &s,
        "/v1/chat/completions",
        &chat(json!({})),
        &[("authorization", &auth(&plain))],
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let l = post_json(
        &s,
        "/v1/chat/completions",
        &chat(json!({})),
        &[("authorization", &auth(&logged))],
    )
    .await;
    assert_eq!(l.status, 200, "{}", l.text);
    let recs = wait_records(&home, &[&anon.request_id, &p.request_id, &l.request_id]);
    assert_eq!(recs[0]["status"], 401);
    assert!(recs[0]["key_name"].is_null());
    assert!(recs[0].get("request_body").is_none(), "{}", recs[0]);
    assert_eq!(recs[1]["key_name"], "plain");
    assert!(recs[1].get("request_body").is_none() && recs[1].get("output_text").is_none());
    assert_eq!(recs[2]["key_name"], "logged");
    assert!(recs[2]["request_body"].as_str().unwrap().contains(SECRET));
    let text = l.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(recs[2]["output_text"], text);
    let (_, only) = export(&home, &["--key", "logged"]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["request_id"], l.request_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_stream_is_recorded_as_not_completed() {
    use futures::StreamExt;
    let home = temp_home("left");
    let s = serve(&home, &[]);
    let body = chat(json!({"stream": true, "max_tokens": 200, "ignore_eos": true}));
    let resp = reqwest::Client::new()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut chunks = resp.bytes_stream();
    chunks.next().await.expect("a first chunk").expect("bytes");
    drop(chunks);
    let rec = &wait_records(&home, &[&id])[0];
    assert_eq!(rec["completed"], false, "{rec}");
    assert_eq!(rec["status"], 200);
    assert!(rec["completion_tokens"].as_u64().unwrap() < 200, "{rec}");
}
