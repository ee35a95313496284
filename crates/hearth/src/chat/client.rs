//! The HTTP side of `hearth chat`: the server's models and one streamed answer.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::sse_client::SseReader;

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    pub fn new(base: &str, key: Option<String>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            key,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn req(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// The ids of the server's models, in its order.
    pub async fn models(&self) -> Result<Vec<String>> {
        let url = format!("{}/v1/models", self.base);
        let resp = self.req(self.http.get(&url)).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("HTTP {status}: {}", crate::sse_client::error_message(&body));
        }
        let v: Value = serde_json::from_str(&body).context("bad /v1/models answer")?;
        Ok(v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Streams one answer to `out`, appending it to `text` as it comes, so that a
    /// caller who drops this future (Ctrl-C) keeps what arrived; dropping it closes
    /// the connection, which makes the server abort the generation.
    pub async fn answer(
        &self,
        body: &Value,
        text: &mut String,
        out: &mut impl Write,
    ) -> Result<()> {
        let url = format!("{}/v1/chat/completions", self.base);
        let resp = self.req(self.http.post(&url).json(body)).send().await?;
        let mut sse = SseReader::new(resp).await?;
        while let Some(data) = sse.next_data().await? {
            let v: Value = serde_json::from_str(&data).context("bad chunk from the server")?;
            if let Some(msg) = v["error"]["message"].as_str() {
                anyhow::bail!("server error: {msg}");
            }
            if let Some(delta) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(delta);
                write!(out, "{delta}")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}
