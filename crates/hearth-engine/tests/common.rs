//! Shared set-up: the real default model behind a real engine.

use std::path::PathBuf;
use std::sync::Arc;

use hearth_engine::{
    EngineConfig, EngineHandle, Event, FinishReason, Request, SamplingParams, TokenLogprob, Usage,
};
use hearth_text::Tokenizer;

pub fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("HEARTH_TEST_MODEL") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HEARTH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".local/share/hearth")
        });
    let p = home.join("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "the default model is missing at {}: run scripts/test (it pulls it)",
        p.display()
    );
    p
}

pub struct Fixture {
    pub engine: EngineHandle,
    pub tokenizer: Arc<Tokenizer>,
}

pub fn start(config: EngineConfig) -> Fixture {
    let loaded = hearth_models::load_gguf(&model_path()).expect("model loads");
    let tokenizer =
        Arc::new(Tokenizer::from_gguf_metadata(&loaded.metadata).expect("tokenizer builds"));
    let engine =
        EngineHandle::start(loaded.model, tokenizer.clone(), config).expect("engine starts");
    Fixture { engine, tokenizer }
}

pub fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens,
        ..Default::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub tokens: Vec<u32>,
    pub text: String,
    pub reason: FinishReason,
    pub usage: Usage,
    /// Per token, when the request asked for logprobs.
    pub logprobs: Vec<TokenLogprob>,
}

/// Runs a request to its end and collects what it produced.
pub async fn run(engine: &EngineHandle, prompt_ids: Vec<u32>, params: SamplingParams) -> Outcome {
    let mut stream = engine
        .submit(Request { prompt_ids, params })
        .expect("accepted");
    let (mut tokens, mut text, mut logprobs) = (Vec::new(), String::new(), Vec::new());
    while let Some(ev) = stream.next().await {
        match ev {
            Event::Delta {
                text: t,
                token_ids,
                logprobs: l,
            } => {
                tokens.extend(token_ids);
                text.push_str(&t);
                logprobs.extend(l);
            }
            Event::Finished { reason, usage } => {
                return Outcome {
                    tokens,
                    text,
                    reason,
                    usage,
                    logprobs,
                }
            }
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
    panic!("stream ended without Finished")
}

pub fn prompt(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, false).expect("encodes")
}

/// Waits (bounded) until the engine has no running or waiting sequence and no used block.
pub async fn wait_idle(engine: &EngineHandle) -> hearth_engine::stats::StatsSnapshot {
    for _ in 0..200 {
        let s = engine.stats();
        if s.running == 0 && s.waiting == 0 && s.used_blocks == 0 {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("engine did not return to idle: {:?}", engine.stats())
}
