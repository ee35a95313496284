//! Shared by the integration tests: find the real model, start `hearth serve` on a
//! free port, stop it when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const MODEL_NAME: &str = "test-model";

/// `$HEARTH_TEST_MODEL`, else the default model in the store; fails loudly otherwise.
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HEARTH_TEST_MODEL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "HEARTH_TEST_MODEL={} does not exist",
            p.display()
        );
        return p;
    }
    let home = std::env::var_os("HEARTH_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/hearth")))
        .expect("neither HEARTH_HOME nor HOME is set");
    let p = home.join("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "no test model: set HEARTH_TEST_MODEL or run `scripts/test` (it pulls the default model into {})",
        p.display()
    );
    p
}

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts the real binary on the test model with `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let model = model_path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        cmd.arg("serve")
            .arg(&model)
            .args([
                "--port",
                "0",
                "--served-model-name",
                MODEL_NAME,
                "--kv-cache-memory",
                "256MiB",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Server::spawn(cmd)
    }

    /// Runs `cmd` (a `hearth serve` command line) and waits for its address.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawning hearth");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("hearth listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hearth serve did not print its address (status {:?})",
                    child.try_wait()
                );
            }
        };
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `secs` for the process to exit (after a signal sent elsewhere).
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends SIGTERM and waits up to `secs` for the process to exit.
    pub fn terminate(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Polls /stats until no request runs, waits or holds a KV block.
    pub async fn wait_idle(&self, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let st = self.stats().await;
            if st["running"] == 0 && st["used_blocks"] == 0 && st["waiting"] == 0 {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "engine not idle: {st}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(self.url("/stats"))
            .await
            .expect("GET /stats")
            .json()
            .await
            .expect("stats json")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
pub fn sse_payloads(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim_start().to_string())
        .collect()
}

/// Posts a streaming request and returns its parsed chunks and whether it ended with [DONE].
pub async fn post_stream(url: &str, body: &Value) -> (Vec<Value>, bool) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
    let payloads = sse_payloads(&resp.text().await.expect("body"));
    let done = payloads.last().map(String::as_str) == Some("[DONE]");
    let chunks = payloads
        .iter()
        .filter(|p| p.as_str() != "[DONE]")
        .map(|p| serde_json::from_str(p).expect("chunk JSON"))
        .collect();
    (chunks, done)
}

/// Every error answer has OpenAI's shape.
pub fn assert_error_shape(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].is_string(), "no error.message in {v}");
    assert!(e["type"].is_string(), "no error.type in {v}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "missing param/code in {v}"
    );
}

/// Runs `tests/python/<script>` with `python3` and `args`, after checking that the
/// Python `package` (an official SDK, installed by `.ci/run`) imports; fails loudly
/// otherwise. Returns the script's stdout.
pub fn run_python_sdk_script(package: &str, script: &str, args: &[&str]) -> String {
    let check = Command::new("python3")
        .args(["-c", &format!("import {package}")])
        .output();
    match check {
        Err(e) => panic!("python3 is needed for this test: {e}"),
        Ok(o) if !o.status.success() => panic!(
            "the `{package}` Python package is missing (pip install {package}): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "SDK script failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A family's real chat template (hearth-text's fixture) in a file.
pub fn family_template(family: &str) -> std::path::PathBuf {
    let fx = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hearth-text/tests/fixtures/family_templates.json"
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fx).expect("fixture")).expect("json");
    let t = v["families"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["family"] == family))
        .and_then(|f| f["template"].as_str())
        .expect("family template");
    let path = std::env::temp_dir().join(format!("hearth-{family}-{}.jinja", std::process::id()));
    std::fs::write(&path, t).expect("write template");
    path
}

/// VmRSS of `pid` in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS kB")
}

/// Runs the hearth binary with `args`: whether it succeeded, and stdout + stderr.
pub fn hearth_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .expect("run hearth");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The value printed after `key` in `hearth plan`'s report.
pub fn plan_field(report: &str, key: &str) -> String {
    let line = report.lines().find(|l| l.starts_with(key));
    let line = line.unwrap_or_else(|| panic!("no `{key}` in:\n{report}"));
    line[key.len()..].trim().to_string()
}
