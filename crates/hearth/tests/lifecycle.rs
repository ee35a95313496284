//! Shutdown drain and slow-client timeouts, against the real binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, MODEL_NAME};
use futures::StreamExt;
use serde_json::{json, Value};

fn stream_body(max_tokens: u32) -> Value {
    json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": true,
    })
}

fn signal(s: &Server, sig: &str) {
    let pid = s.pid().to_string();
    let ok = Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("running kill");
    assert!(ok.success(), "kill {sig} {pid} failed");
}

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Sends one GET on a kept-alive raw connection; returns (status, whole head).
fn raw_get(conn: &mut TcpStream, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conn.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Read the head, then the body (chunked or content-length).
    while !buf.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).expect("read");
        assert!(
            n == 1,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    if head.contains("transfer-encoding: chunked") {
        // Small bodies: read up to the last (empty) chunk.
        let mut body = Vec::new();
        while !body.ends_with(b"0\r\n\r\n") {
            let n = conn.read(&mut byte).expect("read");
            assert!(n == 1, "connection closed mid-body");
            body.push(byte[0]);
        }
    } else {
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).expect("body");
    }
    let status = head[9..12].parse().expect("status");
    (status, head)
}

/// One streaming request: its finish reason and whether it ended with [DONE].
async fn run_stream(url: String, started: tokio::sync::mpsc::Sender<()>) -> (Option<String>, bool) {
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&stream_body(48))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut told = false;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { break };
        text.push_str(&String::from_utf8_lossy(&chunk));
        if !told && text.contains("\"content\"") {
            told = true;
            let _ = started.send(()).await;
        }
    }
    let payloads = common::sse_payloads(&text);
    let done = payloads.last().map(String::as_str) == Some("[DONE]");
    // The chunk before [DONE] carries the finish reason: all 48 tokens were generated.
    let finish = payloads
        .iter()
        .rev()
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .find_map(|v| {
            v["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_string)
        });
    (finish, done)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_eight_streams_finish_then_exits_zero() {
    // A long header timeout: the raw connection below idles while the streams start.
    let mut s = Server::start(&["--max-num-seqs", "8", "--header-timeout", "120"]);
    let url = s.url("/v1/chat/completions");
    // A kept-alive connection opened before the signal, to ask /ready during the drain.
    let mut conn = TcpStream::connect(addr(&s)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(raw_get(&mut conn, "/ready").0, 200);

    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let streams: Vec<_> = (0..8)
        .map(|_| tokio::spawn(run_stream(url.clone(), tx.clone())))
        .collect();
    for _ in 0..8 {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("every stream produces a first token");
    }
    // Ready while working: the engine steps.
    let (ready, conn) = tokio::task::spawn_blocking(move || (raw_get(&mut conn, "/ready").0, conn))
        .await
        .expect("raw client");
    let mut conn = conn;
    assert_eq!(ready, 200);
    signal(&s, "-TERM");

    // Readiness turns false at once; the request is served, the connection not kept.
    let (conn_status, head) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, head) = raw_get(&mut conn, "/ready");
            if status != 200 || Instant::now() > deadline {
                return (status, head);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("raw client");
    assert_eq!(conn_status, 503, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // No new connection is accepted.
    assert!(reqwest::get(s.url("/health")).await.is_err());

    for st in streams {
        let (finish, done) = st.await.expect("stream task");
        assert!(done, "a stream did not end with [DONE]");
        assert_eq!(finish.as_deref(), Some("length"));
    }
    let status = tokio::task::spawn_blocking(move || s.wait_exit(60))
        .await
        .expect("wait")
        .expect("hearth did not exit after the drain");
    assert!(status.success(), "exit {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_drain_timeout_aborts_what_is_left_and_exits_zero() {
    let mut s = Server::start(&["--drain-timeout", "1s"]);
    let url = s.url("/v1/chat/completions");
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let stream = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(&url)
            .json(&stream_body(4000))
            .send()
            .await
            .expect("POST");
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            let _ = tx.try_send(());
        }
        text
    });
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("first chunk");
    let t0 = Instant::now();
    // Ctrl-C drains like SIGTERM.
    signal(&s, "-INT");
    let status = tokio::task::spawn_blocking(move || s.wait_exit(30))
        .await
        .expect("wait")
        .expect("hearth did not exit after the drain timeout");
    let took = t0.elapsed();
    assert!(status.success(), "exit {status:?}");
    assert!(took >= Duration::from_millis(900), "exited after {took:?}");
    let text = stream.await.expect("stream task");
    assert!(
        !text.contains("[DONE]"),
        "a 4000-token stream finished within 1s"
    );
}

/// Reads until the server closes the connection; returns how long that took.
fn time_to_close(conn: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return t0.elapsed(),
            Ok(_) => {}
        }
    }
}

fn assert_within(took: Duration, lo_ms: u64, hi_ms: u64, what: &str) {
    assert!(
        took >= Duration::from_millis(lo_ms) && took < Duration::from_millis(hi_ms),
        "{what}: closed after {took:?}"
    );
}

fn connect(s: &Server) -> TcpStream {
    let conn = TcpStream::connect(addr(s)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    conn
}

#[test]
fn slow_header_and_idle_connections_are_closed() {
    let s = Server::start(&["--header-timeout", "1", "--idle-timeout", "3"]);
    // Half a header, then nothing: the header timeout.
    let mut conn = connect(&s);
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .expect("write");
    assert_within(time_to_close(&mut conn), 800, 4000, "half a header");

    // Connected, nothing sent: the first header is due within the header timeout.
    let mut conn = connect(&s);
    assert_within(time_to_close(&mut conn), 800, 4000, "silent connection");

    // A finished request leaves an idle kept-alive connection: the idle timeout.
    let mut conn = connect(&s);
    assert_eq!(raw_get(&mut conn, "/health").0, 200);
    assert_within(
        time_to_close(&mut conn),
        2500,
        10000,
        "idle kept-alive connection",
    );

    // A kept-alive connection's next request may come after the header timeout;
    // its header, once started, must then arrive within the header timeout.
    let mut conn = connect(&s);
    assert_eq!(raw_get(&mut conn, "/health").0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(raw_get(&mut conn, "/health").0, 200);
    conn.write_all(b"GET /health HTTP/1.1\r\n").expect("write");
    assert_within(time_to_close(&mut conn), 800, 4000, "slow second header");

    // A long request is not cut by either timeout (the handler runs for longer).
    let mut conn = connect(&s);
    let body = serde_json::to_string(&json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Tell a story."}],
        "max_tokens": 300,
        "ignore_eos": true,
    }))
    .expect("json");
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"completion_tokens\":300") {
        let n = conn.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed mid-request: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}
