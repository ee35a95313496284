//! A bounded load test on loopback: 64 concurrent streaming clients for
//! $HEARTH_SOAK_SECS (default 120) seconds, zero errors, every stream complete,
//! server memory flat; then `kill -9` mid-stream, a restart on the same home, and
//! the audit log holds every completed request exactly once and passes SQLite's
//! integrity check.

mod audit_support;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_support::{export, temp_home, wait_records};
use common::{model_path, rss_kb, sse_payloads, Server, MODEL_NAME};
use serde_json::{json, Value};

const CLIENTS: usize = 64;
/// A KV cache just over what 64 short streams hold at once (23 KiB a token for this
/// model in the default f16 cache): warm-up touches all of its pages, so later growth
/// would be a leak.
const SERVE_FLAGS: &[&str] = &["--max-num-seqs", "64", "--kv-cache-memory", "80MiB"];
/// Growth of the server's RSS allowed between the end of warm-up and the end.
const RSS_SLACK_KB: u64 = 64 * 1024;

/// `hearth serve` with `home` as HEARTH_HOME.
fn start(home: &std::path::Path) -> Server {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(model_path())
        .args(["--port", "0", "--served-model-name", MODEL_NAME])
        .args(SERVE_FLAGS)
        .env("HEARTH_HOME", home)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::inherit());
    Server::spawn(cmd)
}

fn soak_secs() -> u64 {
    std::env::var("HEARTH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

fn body(i: usize, max_tokens: u32) -> Value {
    json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": format!("Tell me about the number {i}.")}],
        "max_tokens": max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

/// One streamed chat, checked: 200, ends with [DONE], a finish_reason, usage.
/// Returns (request id, completion tokens).
async fn one_stream(
    client: &reqwest::Client,
    url: &str,
    i: usize,
) -> Result<(String, u64), String> {
    let resp = client
        .post(url)
        .json(&body(i, 16))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    if status != 200 || id.is_empty() {
        return Err(format!("status {status}, id {id:?}: {text:.200}"));
    }
    let payloads = sse_payloads(&text);
    if payloads.last().map(String::as_str) != Some("[DONE]") {
        return Err(format!("no [DONE]: {text:.300}"));
    }
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).map_err(|e| format!("chunk {p}: {e}")))
        .collect::<Result<_, _>>()?;
    let finished = chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"].is_string());
    let tokens = chunks
        .iter()
        .find_map(|c| c["usage"]["completion_tokens"].as_u64());
    match (finished, tokens) {
        (true, Some(n)) if n > 0 => Ok((id, n)),
        _ => Err(format!("no finish_reason or usage: {text:.300}")),
    }
}

/// 64 clients stream back to back until `until`, each at least `min_each` times;
/// returns the completed ids with their token counts, and every error.
async fn clients(
    base: &str,
    until: Instant,
    min_each: usize,
) -> (HashMap<String, u64>, Vec<String>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let url = format!("{base}/v1/chat/completions");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let (mut done, mut errors) = (Vec::new(), Vec::new());
                let mut i = c;
                let mut n = 0;
                while Instant::now() < until || n < min_each {
                    n += 1;
                    match one_stream(&client, &url, i).await {
                        Ok(r) => done.push(r),
                        Err(e) => errors.push(e),
                    }
                    i += CLIENTS;
                }
                (done, errors)
            })
        })
        .collect();
    let (mut done, mut errors) = (HashMap::new(), Vec::new());
    for t in tasks {
        let (d, e) = t.await.expect("client task");
        done.extend(d);
        errors.extend(e);
    }
    (done, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_then_kill_9_keeps_the_audit_log_whole() {
    let secs = soak_secs();
    let home = temp_home("soak");
    let s = start(&home);
    let pid = s.pid();

    // Warm-up (two streams a client at least): allocator pools, KV cache pages and
    // batch buffers reach their size.
    let warm = (secs / 4).clamp(10, 30);
    let (warm_done, errors) = clients(&s.base, Instant::now() + Duration::from_secs(warm), 2).await;
    assert!(errors.is_empty(), "warm-up errors: {errors:?}");
    let rss_start = rss_kb(pid);

    let sampler = {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = samples.clone();
        let h = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                out.lock().unwrap().push(rss_kb(pid));
            }
        });
        (h, samples)
    };
    let started = Instant::now();
    let (done, errors) = clients(&s.base, started + Duration::from_secs(secs), 1).await;
    let elapsed = started.elapsed();
    sampler.0.abort();
    let rss_end = rss_kb(pid);
    let samples = sampler.1.lock().unwrap().clone();
    eprintln!(
        "soak: {} streams in {elapsed:?} by {CLIENTS} clients ({} in warm-up), {} errors; \
         RSS start {rss_start} kB, end {rss_end} kB, every 5 s {samples:?}",
        done.len(),
        warm_done.len(),
        errors.len(),
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        done.len() >= CLIENTS,
        "only {} streams completed",
        done.len()
    );
    assert!(
        rss_end <= rss_start + RSS_SLACK_KB,
        "RSS grew from {rss_start} kB to {rss_end} kB (samples {samples:?})"
    );

    // Every completed stream is recorded before the crash.
    let mut all: HashMap<String, u64> = warm_done;
    all.extend(done);
    let ids: Vec<&str> = all.keys().map(String::as_str).collect();
    wait_records(&home, &ids);

    // kill -9 while 8 long streams are mid-way.
    let url = s.url("/v1/chat/completions");
    let client = reqwest::Client::new();
    let mut streams = Vec::new();
    for i in 0..8 {
        let mut b = body(i, 400);
        b["ignore_eos"] = json!(true);
        let mut resp = client
            .post(&url)
            .json(&b)
            .send()
            .await
            .expect("long stream");
        assert_eq!(resp.status().as_u16(), 200);
        let first = resp.chunk().await.expect("first chunk");
        assert!(first.is_some(), "stream {i} ended before the kill");
        streams.push(resp);
    }
    drop(s); // SIGKILL, then reaped
    for mut r in streams {
        // The cut streams end without [DONE] (or with an error).
        let mut rest = Vec::new();
        while let Ok(Some(c)) = r.chunk().await {
            rest.extend_from_slice(&c);
        }
        assert!(!String::from_utf8_lossy(&rest).contains("[DONE]"));
    }

    // Restart on the same home: the log opens, is whole, and goes on.
    let s = start(&home);
    let (_, records) = export(&home, &[]);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *seen
            .entry(r["request_id"].as_str().expect("request_id"))
            .or_default() += 1;
    }
    for (id, tokens) in &all {
        assert_eq!(
            seen.get(id.as_str()),
            Some(&1),
            "request {id} recorded {:?} times",
            seen.get(id.as_str())
        );
        let r = records
            .iter()
            .find(|r| r["request_id"] == *id)
            .expect("record");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["endpoint"], "/v1/chat/completions", "{r}");
        assert_eq!(r["completed"], true, "{r}");
        assert_eq!(r["completion_tokens"].as_u64(), Some(*tokens), "{r}");
        assert!(r["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{r}");
    }
    assert!(seen.values().all(|&n| n == 1), "a request recorded twice");
    let one = one_stream(&client, &s.url("/v1/chat/completions"), 0)
        .await
        .expect("after restart");
    wait_records(&home, &[&one.0]);
    drop(s);

    let db = rusqlite::Connection::open(home.join("audit.sqlite")).expect("open audit db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    eprintln!(
        "audit after kill -9: {} records, integrity ok",
        records.len()
    );
}
