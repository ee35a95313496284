//! One streaming completions request, timed chunk by chunk.

use std::time::Instant;

use serde_json::Value;

use super::stats::RequestResult;
use crate::sse_client::SseReader;

pub async fn send(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: Value,
    prompt_len: usize,
) -> RequestResult {
    let start = Instant::now();
    let mut r = RequestResult {
        prompt_len,
        ..Default::default()
    };
    match timed(http, url, key, &body, start, &mut r).await {
        Ok(()) => r.success = true,
        Err(e) => r.error = format!("{e:#}"),
    }
    r.latency = start.elapsed().as_secs_f64();
    r
}

async fn timed(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
    start: Instant,
    r: &mut RequestResult,
) -> anyhow::Result<()> {
    let mut req = http.post(url).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let mut sse = SseReader::new(req.send().await?).await?;
    let mut last: Option<Instant> = None;
    let mut chunks = 0usize;
    let mut usage_tokens = None;
    while let Some(data) = sse.next_data().await? {
        let now = Instant::now();
        let v: Value = serde_json::from_str(&data)?;
        if let Some(msg) = v["error"]["message"].as_str() {
            anyhow::bail!("server error: {msg}");
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            usage_tokens = Some(n as usize);
        }
        if let Some(n) = v["usage"]["prompt_tokens"].as_u64() {
            r.prompt_len = n as usize;
        }
        let text = v["choices"][0]["text"].as_str().unwrap_or("");
        if text.is_empty() {
            continue;
        }
        match last {
            None => r.ttft = (now - start).as_secs_f64(),
            Some(prev) => r.itl.push((now - prev).as_secs_f64()),
        }
        last = Some(now);
        chunks += 1;
    }
    if last.is_none() {
        anyhow::bail!("no output tokens");
    }
    // The usage chunk counts tokens exactly; chunks undercount when one holds several.
    r.output_len = usage_tokens.unwrap_or(chunks);
    Ok(())
}
