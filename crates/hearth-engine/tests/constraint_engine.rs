//! Structured outputs through the engine on the real default model: the sampler only
//! draws allowed tokens, and a complete output stops the sequence.

#[allow(dead_code)]
mod common;

use common::*;
use hearth_engine::{EngineConfig, FinishReason, SamplingParams, SharedConstraint};
use hearth_text::{ConstraintCompiler, ConstraintSpec};

fn config() -> EngineConfig {
    EngineConfig {
        kv_cache_bytes: 128 << 20,
        max_model_len: 1024,
        ..Default::default()
    }
}

fn params(c: &ConstraintCompiler, spec: ConstraintSpec, seed: u64) -> SamplingParams {
    let compiled = c.compile(&spec).expect("spec compiles");
    SamplingParams {
        temperature: 1.0,
        seed: Some(seed),
        max_tokens: 64,
        constraint: Some(SharedConstraint::new(compiled)),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_choice_and_regex_outputs_match_and_stop() {
    let f = start(config());
    let compiler = ConstraintCompiler::new(&f.tokenizer).expect("compiler");
    let choices = vec!["red".to_string(), "green".into(), "light blue".into()];
    let ids = prompt(&f.tokenizer, "My favourite colour is");
    let mut runs = Vec::new();
    for seed in 0..4 {
        let spec = ConstraintSpec::Choice(choices.clone());
        let p = params(&compiler, spec, seed);
        runs.push(tokio::spawn({
            let (engine, ids) = (f.engine.clone(), ids.clone());
            async move { run(&engine, ids, p).await }
        }));
        let p = params(
            &compiler,
            ConstraintSpec::Regex("[0-9]{3}-[0-9]{2}".into()),
            seed,
        );
        runs.push(tokio::spawn({
            let (engine, ids) = (f.engine.clone(), ids.clone());
            async move { run(&engine, ids, p).await }
        }));
    }
    for (i, r) in runs.into_iter().enumerate() {
        let out = r.await.expect("task");
        assert_eq!(out.reason, FinishReason::Stop, "{out:?}");
        if i % 2 == 0 {
            assert!(
                choices.contains(&out.text),
                "{:?} is not a choice",
                out.text
            );
        } else {
            let b = out.text.as_bytes();
            let ok = b.len() == 6
                && b[3] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(j, c)| j == 3 || c.is_ascii_digit());
            assert!(ok, "{:?} does not match", out.text);
        }
    }
    wait_idle(&f.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_that_allows_only_the_empty_output_stops_at_once() {
    let f = start(config());
    let compiler = ConstraintCompiler::new(&f.tokenizer).expect("compiler");
    for (min_tokens, ignore_eos) in [(0, false), (3, false), (0, true)] {
        let mut p = params(&compiler, ConstraintSpec::Choice(vec![String::new()]), 1);
        p.min_tokens = min_tokens;
        p.ignore_eos = ignore_eos;
        let out = run(&f.engine, prompt(&f.tokenizer, "Say nothing:"), p).await;
        assert_eq!(out.reason, FinishReason::Stop, "{out:?}");
        assert_eq!(out.text, "", "{out:?}");
    }
    wait_idle(&f.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_json_schema_parses() {
    let f = start(config());
    let compiler = ConstraintCompiler::new(&f.tokenizer).expect("compiler");
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": false
    });
    let mut p = params(
        &compiler,
        ConstraintSpec::JsonSchema {
            schema,
            strict: true,
        },
        1,
    );
    p.temperature = 0.0;
    p.max_tokens = 200;
    let ids = prompt(&f.tokenizer, "A person, as JSON:");
    let out = run(&f.engine, ids, p).await;
    assert_eq!(out.reason, FinishReason::Stop, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.text).expect("output is JSON");
    assert!(v["name"].is_string() && v["age"].is_i64(), "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(2));
}
