//! Helpers for the audit log tests: a server with its own HEARTH_HOME, HTTP calls
//! that return the request id, and `hearth audit` runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{model_path, Server, MODEL_NAME};

/// A fresh, empty HEARTH_HOME, removed when dropped (tests leave nothing in /tmp).
pub struct TempHome(PathBuf);

impl std::ops::Deref for TempHome {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_home(name: &str) -> TempHome {
    let dir = std::env::temp_dir().join(format!(
        "hearth-audit-it-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp home");
    TempHome(dir)
}

/// `hearth serve` on the test model with `home` as HEARTH_HOME.
pub fn serve(home: &Path, extra: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(model_path())
        .args(["--port", "0", "--served-model-name", MODEL_NAME])
        .args(["--kv-cache-memory", "256MiB"])
        .args(extra)
        .env("HEARTH_HOME", home)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Server::spawn(cmd)
}

/// Runs `hearth audit ARGS` with `home`; returns (success, stdout, stderr).
pub fn audit_cli(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("audit")
        .args(args)
        .env("HEARTH_HOME", home)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running hearth audit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hearth audit export ARGS`: the raw text and the parsed lines.
pub fn export(home: &Path, args: &[&str]) -> (String, Vec<Value>) {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let (ok, out, err) = audit_cli(home, &all);
    assert!(ok, "hearth audit export failed: {err}");
    let recs = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out, recs)
}

/// Polls the export until every id in `ids` has a record; returns them in that order.
pub fn wait_records(home: &Path, ids: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let db = home.join("audit.sqlite");
        if db.is_file() {
            let (_, recs) = export(home, &[]);
            let found: Vec<Value> = ids
                .iter()
                .filter_map(|id| recs.iter().find(|r| r["request_id"] == *id).cloned())
                .collect();
            if found.len() == ids.len() {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "records {ids:?} never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A finished HTTP exchange.
pub struct Reply {
    pub status: u16,
    pub request_id: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id header")
        .to_string();
    let text = resp.text().await.expect("body");
    Reply {
        status,
        request_id,
        text,
    }
}

pub async fn post_json(s: &Server, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new().post(s.url(path)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req).await
}

pub async fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new().get(s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req).await
}

/// The text of a streamed chat: its deltas joined.
pub fn streamed_text(sse: &str) -> String {
    crate::common::sse_payloads(sse)
        .iter()
        .filter(|p| p.as_str() != "[DONE]")
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}
