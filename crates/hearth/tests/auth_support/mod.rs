//! Shared by the auth, exposure and limit tests: a temporary $HEARTH_HOME, the
//! `hearth keys` CLI run in it, a server started in it, requests with headers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::common::{model_path, Server, MODEL_NAME};

/// A fresh $HEARTH_HOME, removed when dropped.
pub struct Home(pub PathBuf);

impl Home {
    pub fn new(tag: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("hearth-auth-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp home");
        Home(dir)
    }

    fn hearth(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        cmd.env("HEARTH_HOME", &self.0).env("RUST_LOG", "warn");
        cmd
    }

    /// `hearth keys ARGS` in this home.
    pub fn keys(&self, args: &[&str]) -> Output {
        self.hearth()
            .arg("keys")
            .args(args)
            .output()
            .expect("running hearth keys")
    }

    /// `hearth keys create --name NAME EXTRA`; returns the printed key.
    pub fn create_key(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", "--name", name];
        args.extend_from_slice(extra);
        let out = self.keys(&args);
        assert!(out.status.success(), "keys create failed: {out:?}");
        let key = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        assert!(
            key.starts_with("hth_") && key.len() == 68,
            "not a key: {key}"
        );
        let note = String::from_utf8_lossy(&out.stderr);
        assert!(note.contains("will not be shown again"), "{note}");
        key
    }

    /// `hearth serve` on the test model in this home, on 127.0.0.1:0.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let mut cmd = self.serve_command(extra);
        cmd.stderr(Stdio::inherit());
        Server::spawn(cmd)
    }

    pub fn serve_command(&self, extra: &[&str]) -> Command {
        let mut cmd = self.hearth();
        cmd.arg("serve")
            .arg(model_path())
            .args(["--port", "0", "--served-model-name", MODEL_NAME])
            .args(["--kv-cache-memory", "256MiB"])
            .args(extra);
        cmd
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An answer: status, headers, JSON body (`Null` when the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Sends `method url` with `headers` and, when given, a JSON body.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = reqwest::Client::new().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

pub fn chat_body(max_tokens: u32) -> Value {
    serde_json::json!({
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

pub fn messages_body(max_tokens: u32) -> Value {
    serde_json::json!({
        "model": MODEL_NAME,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Say hi."}],
    })
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Anthropic's error shape: `{"type":"error","error":{"type","message"}}`.
pub fn assert_anthropic_error(v: &Value, kind: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}
