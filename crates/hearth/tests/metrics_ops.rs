//! /metrics, /ready, /version and the request log line, against the real binary.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::{post, post_stream, Server, MODEL_NAME};
use serde_json::{json, Value};

/// A prompt word that must never show up in metrics or logs.
const SECRET: &str = "zebracorn7341";

/// Sample lines of a Prometheus text exposition: "name{labels}" -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in /metrics"))
}

async fn metrics_text(s: &Server) -> String {
    let resp = reqwest::get(s.url("/metrics")).await.expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain"), "content-type {ct}");
    resp.text().await.expect("body")
}

fn chat(content: &str, max_tokens: u32) -> Value {
    json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_tokens_and_latencies() {
    let s = Server::start(&[]);
    let url = s.url("/v1/chat/completions");
    let mut prompt_sum = 0.0;
    let mut gen_sum = 0.0;
    let mut multi_token = 0.0;
    for q in ["Say hello.", &format!("What is {SECRET}?")] {
        let (status, v) = post(&url, &chat(q, 12)).await;
        assert_eq!(status, 200, "{v}");
        let completion = v["usage"]["completion_tokens"].as_f64().expect("usage");
        prompt_sum += v["usage"]["prompt_tokens"].as_f64().expect("usage");
        gen_sum += completion;
        if completion > 1.0 {
            multi_token += 1.0;
        }
    }
    // A refused request and an unknown path carrying the secret: counted, not named.
    let (status, _) = post(&url, &json!({"model": SECRET, "messages": []})).await;
    assert_eq!(status, 404);
    let status = reqwest::get(s.url(&format!("/{SECRET}")))
        .await
        .expect("GET")
        .status();
    assert_eq!(status.as_u16(), 404);

    // The engine frees a finished request's blocks just after its last chunk is sent:
    // scrape until that has happened (bounded), then check everything.
    let mut text = metrics_text(&s).await;
    let mut scrapes = 1.0;
    for _ in 0..50 {
        if get(&samples(&text), "hearth_kv_blocks_used") == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = metrics_text(&s).await;
        scrapes += 1.0;
    }
    assert!(!text.contains(SECRET), "prompt text in /metrics:\n{text}");
    let m = samples(&text);
    let chat_ep = r#"endpoint="/v1/chat/completions""#;
    assert_eq!(
        get(
            &m,
            &format!(r#"hearth_requests_total{{{chat_ep},status="200"}}"#)
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            &format!(r#"hearth_requests_total{{{chat_ep},status="404"}}"#)
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"hearth_requests_total{endpoint="other",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        get(&m, &format!("hearth_generation_tokens_total{{{chat_ep}}}")),
        gen_sum
    );
    assert_eq!(
        get(&m, &format!("hearth_prompt_tokens_total{{{chat_ep}}}")),
        prompt_sum
    );
    // Histograms: one TTFT per generation, an e2e latency for every request.
    assert_eq!(
        get(
            &m,
            &format!("hearth_time_to_first_token_seconds_count{{{chat_ep}}}")
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            &format!("hearth_time_per_output_token_seconds_count{{{chat_ep}}}")
        ),
        multi_token
    );
    assert_eq!(
        get(
            &m,
            &format!("hearth_e2e_request_latency_seconds_count{{{chat_ep}}}")
        ),
        3.0
    );
    assert_eq!(
        get(
            &m,
            &format!(r#"hearth_e2e_request_latency_seconds_bucket{{{chat_ep},le="+Inf"}}"#)
        ),
        3.0
    );
    assert!(
        get(
            &m,
            &format!("hearth_time_to_first_token_seconds_sum{{{chat_ep}}}")
        ) > 0.0
    );
    // Engine numbers, read at scrape time.
    assert!(get(&m, "hearth_kv_blocks_total") > 0.0);
    for name in [
        "hearth_kv_blocks_used",
        "hearth_num_requests_running",
        "hearth_num_requests_waiting",
        "hearth_queue_length",
        "hearth_preemptions_total",
        "hearth_queue_rejections_total",
        "hearth_aborted_requests_total",
    ] {
        assert_eq!(get(&m, name), 0.0, "{name}");
    }
    assert!(get(&m, "hearth_prefix_cache_queried_tokens_total") >= prompt_sum);
    let rate = get(&m, "hearth_prefix_cache_hit_rate");
    assert!((0.0..=1.0).contains(&rate), "hit rate {rate}");
    assert!(text.contains("# TYPE hearth_time_to_first_token_seconds histogram"));
    assert!(text.contains("# TYPE hearth_requests_total counter"));

    // The next scrape counts the ones before it.
    let m = samples(&metrics_text(&s).await);
    assert_eq!(
        get(
            &m,
            r#"hearth_requests_total{endpoint="/metrics",status="200"}"#
        ),
        scrapes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_rejections_and_aborts_are_counted() {
    // A queue of one: of several concurrent requests some must be refused with 503.
    let s = Server::start(&["--max-queued-requests", "1", "--max-num-seqs", "1"]);
    let url = s.url("/v1/chat/completions");
    let reqs = (0..6).map(|_| {
        let url = url.clone();
        async move { post(&url, &chat("Count to twenty.", 24)).await.0 }
    });
    let statuses = futures::future::join_all(reqs).await;
    let refused = statuses.iter().filter(|s| **s == 503).count() as f64;
    assert!(refused >= 1.0, "{statuses:?}");
    let m = samples(&metrics_text(&s).await);
    assert_eq!(get(&m, "hearth_queue_rejections_total"), refused);
    assert_eq!(
        get(
            &m,
            r#"hearth_requests_total{endpoint="/v1/chat/completions",status="503"}"#
        ),
        refused
    );

    // A stream whose client goes away is aborted.
    let mut body = chat("Write a long story about the sea.", 2000);
    body["stream"] = json!(true);
    body["ignore_eos"] = json!(true);
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    if status != 200 {
        panic!("stream refused ({status}): {:?}", resp.text().await);
    }
    let mut stream = resp.bytes_stream();
    use futures::StreamExt;
    let first = stream.next().await;
    assert!(matches!(first, Some(Ok(_))), "no first chunk");
    drop(stream);
    // The first chunk may come before the engine has the request: wait for the abort.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.stats().await["aborted_requests"] != 1 {
        assert!(std::time::Instant::now() < deadline, "no abort counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.wait_idle(30).await;
    let m = samples(&metrics_text(&s).await);
    assert_eq!(get(&m, "hearth_aborted_requests_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_and_version() {
    let s = Server::start(&[]);
    let resp = reqwest::get(s.url("/ready")).await.expect("GET /ready");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["status"], "ready");

    let v: Value = reqwest::get(s.url("/version"))
        .await
        .expect("GET /version")
        .json()
        .await
        .expect("json");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["model"], MODEL_NAME);
    // Built inside the git checkout, so the commit is known.
    let git = v["git"].as_str().expect("git commit");
    assert!(
        git.len() == 40 && git.bytes().all(|b| b.is_ascii_hexdigit()),
        "git {git}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_have_one_line_per_request_with_its_id() {
    let dir = std::env::temp_dir().join(format!("hearth-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(common::model_path())
        .args(["--port", "0", "--served-model-name", MODEL_NAME])
        .args(["--kv-cache-memory", "256MiB", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log));
    let mut s = Server::spawn(cmd);

    let resp = reqwest::Client::new()
        .post(s.url("/v1/chat/completions"))
        .header("x-request-id", "ops-test-42")
        .json(&chat(&format!("Tell me about {SECRET}."), 6))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-request-id"], "ops-test-42");
    resp.text().await.expect("body");
    let mut body = chat(&format!("And {SECRET} again."), 6);
    body["stream"] = json!(true);
    let (_, done) = post_stream(&s.url("/v1/chat/completions"), &body).await;
    assert!(done);
    let status = s.terminate(60).expect("hearth did not exit");
    assert!(status.success(), "exit {status:?}");

    let text = std::fs::read_to_string(&log_path).expect("log");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!text.contains(SECRET), "prompt text in the logs:\n{text}");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "hearth::request")
        .collect();
    let mine: Vec<&&Value> = requests
        .iter()
        .filter(|l| l["request_id"] == "ops-test-42")
        .collect();
    assert_eq!(mine.len(), 1, "{requests:?}");
    let l = mine[0];
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["method"], "POST");
    assert_eq!(l["path"], "/v1/chat/completions");
    assert_eq!(l["status"], 200);
    assert!(l["latency_ms"].as_f64().expect("latency") > 0.0);
    assert!(l["completion_tokens"].as_u64().expect("tokens") > 0);
    assert!(l["timestamp"].is_string());
    // The streamed one has a generated id, logged once.
    let streamed: Vec<_> = requests
        .iter()
        .filter(|l| l["request_id"] != "ops-test-42" && l["path"] == "/v1/chat/completions")
        .collect();
    assert_eq!(streamed.len(), 1, "{requests:?}");
    assert_eq!(
        streamed[0]["request_id"].as_str().map(str::len),
        Some(32),
        "{:?}",
        streamed[0]
    );
}
