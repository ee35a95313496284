//! `hearth bench`: load a running server like `vllm bench serve` does and report
//! TTFT, TPOT, ITL, end-to-end latency and throughput.

mod client;
mod prompts;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use stats::{summarize, Dist, RequestResult, Summary};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Model name; defaults to the server's first model.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, env = "HEARTH_API_KEY")]
    pub api_key: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub num_prompts: usize,
    /// Requests in flight at most (default: no limit).
    #[arg(long, alias = "max-concurrency")]
    pub concurrency: Option<usize>,
    /// Requests per second, Poisson arrivals (default: all at once).
    #[arg(long, default_value_t = f64::INFINITY)]
    pub request_rate: f64,
    /// Prompt tokens per request.
    #[arg(long, alias = "random-input-len", default_value_t = 256)]
    pub input_len: usize,
    /// Tokens (or words) of one random prefix shared by every prompt, before its own
    /// `input_len` (vLLM's --random-prefix-len): measures prefix-cache hits.
    #[arg(long, alias = "prefix-len", default_value_t = 0)]
    pub random_prefix_len: usize,
    /// Requests sent one at a time before the timed ones and left out of the figures
    /// (vLLM's --num-warmups): each is the shared prefix and its own random input, so with
    /// `--random-prefix-len` every timed request finds the prefix cached.
    #[arg(long, default_value_t = 0)]
    pub num_warmups: usize,
    /// Output tokens per request (EOS is ignored so every request makes this many).
    #[arg(long, alias = "random-output-len", default_value_t = 128)]
    pub output_len: usize,
    /// Seed of the random prompts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling temperature of every request.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// top_k of every request (sent only when given; Ollama's default is 40).
    #[arg(long)]
    pub top_k: Option<i64>,
    /// top_p of every request (sent only when given).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Send random words as text instead of random token ids.
    #[arg(long)]
    pub text_prompts: bool,
    /// Token ids are drawn from [100, this).
    #[arg(long, default_value_t = 30000)]
    pub max_token_id: u32,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub result_json: Option<std::path::PathBuf>,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()?;
    let model = match &args.model {
        Some(m) => m.clone(),
        None => {
            let v: Value = http
                .get(format!("{base}/v1/models"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            v["data"][0]["id"]
                .as_str()
                .map(str::to_owned)
                .context("the server lists no model")?
        }
    };
    let mut rng = prompts::rng(args.seed);
    let ids = (!args.text_prompts).then_some((100u32, args.max_token_id.max(101)));
    let prefix = prompts::random_prompt(&mut rng, args.random_prefix_len, ids);
    let url = format!("{base}/v1/completions");
    let limit = Arc::new(Semaphore::new(
        args.concurrency.unwrap_or(Semaphore::MAX_PERMITS).max(1),
    ));
    let key = args.api_key.clone();
    println!(
        "benchmarking {model} at {base}: {} prompts, input {} output {}",
        args.num_prompts, args.input_len, args.output_len
    );
    // The warm-ups' inputs come from their own generator: the timed prompts of a seed
    // are the same with or without them.
    let mut warm_rng = prompts::rng(args.seed ^ WARMUP_SALT);
    for i in 0..args.num_warmups {
        let prompt = prompts::join(
            &prefix,
            prompts::random_prompt(&mut warm_rng, args.input_len, ids),
        );
        let body = request_body(&model, prompt, &args);
        let r = client::send(&http, &url, key.as_deref(), body, args.input_len).await;
        if !r.success {
            anyhow::bail!(
                "warm-up request {} of {} failed: {}",
                i + 1,
                args.num_warmups,
                r.error
            );
        }
    }

    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.num_prompts);
    for i in 0..args.num_prompts {
        if i > 0 {
            let gap = prompts::next_gap(&mut rng, args.request_rate);
            if gap > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(gap)).await;
            }
        }
        let prompt = prompts::join(
            &prefix,
            prompts::random_prompt(&mut rng, args.input_len, ids),
        );
        let body = request_body(&model, prompt, &args);
        let permit = limit.clone().acquire_owned().await?;
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        // The usage chunk replaces this with the server's exact count.
        let input_len = args.random_prefix_len + args.input_len;
        tasks.push(tokio::spawn(async move {
            let r = client::send(&http, &url, key.as_deref(), body, input_len).await;
            drop(permit);
            r
        }));
    }
    let mut results: Vec<RequestResult> = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await?);
    }
    let summary = summarize(&results, start.elapsed().as_secs_f64());
    print_summary(&summary);
    if let Some(first) = results.iter().find(|r| !r.success) {
        eprintln!("first error: {}", first.error);
    }
    if let Some(path) = &args.result_json {
        let out = json!({
            "backend": "hearth",
            "model_id": model,
            "num_prompts": args.num_prompts,
            "request_rate": if args.request_rate.is_finite() { json!(args.request_rate) } else { json!("inf") },
            "max_concurrency": args.concurrency,
            "input_len": args.input_len,
            "random_prefix_len": args.random_prefix_len,
            "num_warmups": args.num_warmups,
            "output_len": args.output_len,
            "summary": summary,
            "requests": results,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.completed == 0 {
        anyhow::bail!("no request succeeded");
    }
    Ok(())
}

/// Mixed into the seed of the warm-ups' inputs.
const WARMUP_SALT: u64 = 0x5741_524d_5550;

/// A streamed completion request of exactly `args.output_len` tokens.
fn request_body(model: &str, prompt: Value, args: &BenchArgs) -> Value {
    let mut body = json!({
        "model": model,
        "prompt": prompt,
        "max_tokens": args.output_len,
        "min_tokens": args.output_len,
        "ignore_eos": true,
        "temperature": args.temperature,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(k) = args.top_k {
        body["top_k"] = json!(k);
    }
    if let Some(p) = args.top_p {
        body["top_p"] = json!(p);
    }
    body
}

fn print_summary(s: &Summary) {
    let line = |k: &str, v: String| println!("{k:<40}{v:>12}");
    println!("{:=^52}", " Serving Benchmark Result ");
    line("Successful requests:", s.completed.to_string());
    line("Failed requests:", s.failed.to_string());
    line("Benchmark duration (s):", format!("{:.2}", s.duration));
    line("Total input tokens:", s.total_input_tokens.to_string());
    line("Total generated tokens:", s.total_output_tokens.to_string());
    line(
        "Request throughput (req/s):",
        format!("{:.2}", s.request_throughput),
    );
    line(
        "Output token throughput (tok/s):",
        format!("{:.2}", s.output_throughput),
    );
    line(
        "Total token throughput (tok/s):",
        format!("{:.2}", s.total_token_throughput),
    );
    let dist = |title: &str, short: &str, d: &Dist| {
        println!("{:-^52}", format!(" {title} "));
        line(&format!("Mean {short} (ms):"), format!("{:.2}", d.mean));
        line(&format!("Median {short} (ms):"), format!("{:.2}", d.median));
        line(&format!("P99 {short} (ms):"), format!("{:.2}", d.p99));
    };
    dist("Time to First Token", "TTFT", &s.ttft_ms);
    dist(
        "Time per Output Token (excl. 1st token)",
        "TPOT",
        &s.tpot_ms,
    );
    dist("Inter-token Latency", "ITL", &s.itl_ms);
    dist("End-to-end Latency", "E2EL", &s.e2el_ms);
    println!("{}", "=".repeat(52));
}
