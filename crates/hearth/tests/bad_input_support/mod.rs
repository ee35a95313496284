//! The bad-input suite's table: one `Case` a hostile request, the status it must get
//! and the error shape of the API it hit; `run` sends them all and counts them.
#![allow(dead_code)]

use serde_json::{json, Value};

use crate::common::MODEL_NAME;

pub mod files;
pub mod http_cases;

/// Which API's error object the answer must be.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `{"error": {"message", "type", "param", "code"}}`
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`
    Anthropic,
}

pub enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

pub struct Case {
    pub name: String,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub status: u16,
    pub shape: Shape,
    /// A piece the error message must contain (lowercase compare).
    pub says: Option<&'static str>,
}

impl Case {
    pub fn post(name: impl Into<String>, path: &str, body: Body, status: u16) -> Case {
        let shape = if path.starts_with("/v1/messages") {
            Shape::Anthropic
        } else {
            Shape::OpenAi
        };
        Case {
            name: name.into(),
            method: "POST",
            path: path.into(),
            headers: Vec::new(),
            body,
            status,
            shape,
            says: None,
        }
    }

    pub fn get(name: impl Into<String>, path: &str, status: u16) -> Case {
        let mut c = Case::post(name, path, Body::None, status);
        c.method = "GET";
        c
    }

    pub fn says(mut self, piece: &'static str) -> Case {
        self.says = Some(piece);
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Case {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A chat request with `extra` fields set over a valid base.
pub fn chat(extra: Value) -> Body {
    let mut b = json!({"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    merge(&mut b, extra);
    Body::Json(b)
}

/// A /v1/messages request with `extra` fields set over a valid base.
pub fn messages(extra: Value) -> Body {
    let mut b = json!({"model": MODEL_NAME, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    merge(&mut b, extra);
    Body::Json(b)
}

/// A /v1/completions request with `extra` fields set over a valid base.
pub fn completion(extra: Value) -> Body {
    let mut b = json!({"model": MODEL_NAME, "prompt": "Once", "max_tokens": 4});
    merge(&mut b, extra);
    Body::Json(b)
}

fn merge(b: &mut Value, extra: Value) {
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            b[k] = v.clone();
        }
    }
}

fn check_shape(shape: Shape, v: &Value) -> Result<(), String> {
    let ok = match shape {
        Shape::OpenAi => {
            let e = &v["error"];
            e["message"].is_string()
                && e["type"].is_string()
                && e.get("param").is_some()
                && e.get("code").is_some()
        }
        Shape::Anthropic => {
            v["type"] == "error"
                && v["error"]["type"].is_string()
                && v["error"]["message"].is_string()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("not {shape:?}'s error shape: {v}"))
    }
}

/// Sends one case with `auth` headers added; `Err` says what was wrong.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    auth: &[(&str, &str)],
    c: &Case,
) -> Result<(), String> {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("{base}{}", c.path));
    // A case that brings its own credentials gets no others.
    let own_auth = c.headers.iter().any(|(h, _)| {
        h.eq_ignore_ascii_case("authorization") || h.eq_ignore_ascii_case("x-api-key")
    });
    for (k, v) in auth.iter().filter(|_| !own_auth) {
        req = req.header(*k, *v);
    }
    for (k, v) in &c.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req = match &c.body {
        Body::None => req,
        Body::Json(v) => req.json(v),
        Body::Raw(b) => req
            .header("content-type", "application/json")
            .body(b.clone()),
    };
    let started = std::time::Instant::now();
    let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|_| format!("not JSON ({status}): {text:.300}"))?;
    if status != c.status {
        return Err(format!("status {status}, want {}: {v}", c.status));
    }
    check_shape(c.shape, &v)?;
    if let Some(piece) = c.says {
        let msg = v["error"]["message"].as_str().unwrap_or("").to_lowercase();
        if !msg.contains(piece) {
            return Err(format!("message does not say {piece:?}: {v}"));
        }
    }
    // A clear error is also a quick one.
    if started.elapsed().as_secs() > 20 {
        return Err(format!("took {:?}", started.elapsed()));
    }
    Ok(())
}

/// Sends every case; panics listing all that failed. Returns how many ran.
pub async fn run(base: &str, auth: &[(&str, &str)], cases: &[Case]) -> usize {
    let client = reqwest::Client::new();
    let mut failed = Vec::new();
    for c in cases {
        if let Err(e) = send(&client, base, auth, c).await {
            failed.push(format!("{} ({} {}): {e}", c.name, c.method, c.path));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    cases.len()
}

/// A normal chat and a normal Anthropic message still get real answers.
pub async fn still_answers(base: &str, auth: &[(&str, &str)]) {
    let client = reqwest::Client::new();
    for (path, body) in [
        ("/v1/chat/completions", chat(json!({}))),
        ("/v1/messages", messages(json!({}))),
    ] {
        let Body::Json(body) = body else {
            unreachable!()
        };
        let mut req = client.post(format!("{base}{path}")).json(&body);
        for (k, v) in auth {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("normal request");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let v: Value = resp.json().await.expect("json");
        let out = if path == "/v1/messages" {
            v["usage"]["output_tokens"].as_u64()
        } else {
            v["usage"]["completion_tokens"].as_u64()
        };
        assert!(out.is_some_and(|n| n >= 1), "{path}: {v}");
    }
}
