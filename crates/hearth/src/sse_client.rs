//! Reading an OpenAI-style SSE response: yields each `data:` payload in order.

use anyhow::{bail, Result};

pub struct SseReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
    done: bool,
}

impl SseReader {
    /// Fails with the server's error message when the status is not a success.
    pub async fn new(resp: reqwest::Response) -> Result<SseReader> {
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            bail!("HTTP {status}: {}", error_message(&body));
        }
        Ok(SseReader {
            resp,
            buf: Vec::new(),
            done: false,
        })
    }

    /// The next payload; `None` after `[DONE]` or at the end of the body.
    pub async fn next_data(&mut self) -> Result<Option<String>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(data) = line.strip_prefix("data:") {
                    let data = data.strip_prefix(' ').unwrap_or(data);
                    if data == "[DONE]" {
                        self.done = true;
                        return Ok(None);
                    }
                    return Ok(Some(data.to_string()));
                }
                continue;
            }
            match self.resp.chunk().await? {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => {
                    self.done = true;
                    return Ok(None);
                }
            }
        }
    }
}

/// The `error.message` of an OpenAI error body, or the body itself.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_string())
}
