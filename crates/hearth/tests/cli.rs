//! `hearth bench` against a real server (`hearth chat`: chat_repl.rs).

mod common;

use std::process::Command;

use common::{Server, MODEL_NAME};
use serde_json::Value;

/// Runs `hearth bench` against `s` with `args` and `--result-json`: its stdout and the
/// JSON it wrote (the run must succeed).
fn bench(s: &Server, name: &str, args: &[&str]) -> (String, Value) {
    let dir = std::env::temp_dir().join(format!("hearth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("result.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["bench", "--url", &s.base])
        .args(args)
        .arg("--result-json")
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (stdout, v)
}

#[test]
fn bench_reports_fixed_length_requests() {
    let s = Server::start(&[]);
    let lengths = ["--input-len", "32", "--output-len", "8", "--seed", "1"];
    let load = ["--num-prompts", "6", "--concurrency", "3"];
    let (stdout, v) = bench(&s, "bench", &[&load[..], &lengths[..]].concat());
    assert!(
        stdout.contains("Median TTFT (ms):") && stdout.contains("P99 ITL (ms):"),
        "{stdout}"
    );
    let sum = &v["summary"];
    assert_eq!(v["model_id"], MODEL_NAME);
    assert_eq!(
        (sum["completed"].as_u64(), sum["failed"].as_u64()),
        (Some(6), Some(0)),
        "{sum}"
    );
    // Every request has exactly the asked lengths (ignore_eos + max_tokens).
    assert_eq!(sum["total_input_tokens"], 6 * 32);
    assert_eq!(sum["total_output_tokens"], 6 * 8);
    for r in v["requests"].as_array().unwrap() {
        assert!(r["ttft"].as_f64().unwrap() > 0.0);
        assert!(r["latency"].as_f64().unwrap() >= r["ttft"].as_f64().unwrap());
    }
    assert!(sum["ttft_ms"]["median"].as_f64().unwrap() > 0.0);
    assert!(sum["tpot_ms"]["median"].as_f64().unwrap() > 0.0);
    assert!(sum["output_throughput"].as_f64().unwrap() > 0.0);
}

/// `--num-warmups`: the warm-up caches the shared prefix and is left out of the figures,
/// so every timed request is a prefix hit.
#[test]
fn bench_warmups_are_untimed_and_leave_every_timed_request_a_prefix_hit() {
    let s = Server::start(&[]);
    let args = [
        "--num-warmups",
        "1",
        "--num-prompts",
        "2",
        "--concurrency",
        "1",
        "--seed",
        "3",
    ];
    let prompts = [
        "--random-prefix-len",
        "64",
        "--input-len",
        "8",
        "--output-len",
        "2",
    ];
    let (_, v) = bench(&s, "bench-warm", &[&args[..], &prompts[..]].concat());
    let sum = &v["summary"];
    assert_eq!(v["num_warmups"], 1);
    assert_eq!(
        (
            sum["completed"].as_u64(),
            sum["total_input_tokens"].as_u64()
        ),
        (Some(2), Some(2 * 72)),
        "{sum}"
    );
    let metrics = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(s.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    });
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    // Three requests of 72 tokens were looked up; the two timed ones found the prefix's
    // 4 blocks of 16 that the warm-up left.
    assert_eq!(
        sample("hearth_prefix_cache_queried_tokens_total"),
        3.0 * 72.0
    );
    assert_eq!(sample("hearth_prefix_cache_hit_tokens_total"), 2.0 * 64.0);
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let mut s = Server::start(&[]);
    let status = s
        .terminate(30)
        .expect("hearth serve did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
}
