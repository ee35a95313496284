//! `hearth chat`: a terminal chat against a running server (streaming, with history).

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::sse_client::SseReader;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    #[arg(long, env = "HEARTH_API_KEY")]
    pub api_key: Option<String>,
    /// Model name; defaults to the server's first model.
    #[arg(long)]
    pub model: Option<String>,
    /// A system message to start every conversation with.
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub max_tokens: Option<u32>,
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    fn req(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn first_model(&self) -> Result<String> {
        let url = format!("{}/v1/models", self.base);
        let v: Value = self
            .req(self.http.get(&url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        v["data"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .context("the server lists no model")
    }

    /// Streams one answer to `out`, returning its text.
    async fn answer(&self, body: &Value, out: &mut impl Write) -> Result<String> {
        let url = format!("{}/v1/chat/completions", self.base);
        let resp = self.req(self.http.post(&url).json(body)).send().await?;
        let mut sse = SseReader::new(resp).await?;
        let mut text = String::new();
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
        writeln!(out)?;
        Ok(text)
    }
}

pub async fn run(args: ChatArgs) -> Result<()> {
    let client = Client {
        http: reqwest::Client::new(),
        base: args.url.trim_end_matches('/').to_string(),
        key: args.api_key.clone(),
    };
    let model = match &args.model {
        Some(m) => m.clone(),
        None => client
            .first_model()
            .await
            .with_context(|| format!("asking {} for its models", client.base))?,
    };
    let start: Vec<Value> = args
        .system
        .iter()
        .map(|s| json!({"role": "system", "content": s}))
        .collect();
    let mut history = start.clone();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "chatting with {model} at {} (/clear resets, /exit quits)",
        client.base
    )?;
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let Some(line) = lines.next_line().await? else {
            break;
        };
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/clear" => {
                history = start.clone();
                writeln!(out, "(history cleared)")?;
                continue;
            }
            _ => {}
        }
        history.push(json!({"role": "user", "content": line}));
        let mut body = json!({"model": model, "messages": history, "stream": true});
        if let Some(t) = args.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = args.max_tokens {
            body["max_tokens"] = json!(m);
        }
        match client.answer(&body, &mut out).await {
            Ok(text) => history.push(json!({"role": "assistant", "content": text})),
            Err(e) => {
                history.pop();
                writeln!(out, "\nerror: {e:#}")?;
            }
        }
    }
    Ok(())
}
