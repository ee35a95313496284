//! Property: for every schema of a corpus of real-world JSON schemas, any output the
//! constraint lets through validates against the schema. Outputs are random walks
//! through the masks over the real default model's vocabulary (one-character tokens,
//! so strings stay short and every branch of the grammar gets taken), checked by the
//! independent `jsonschema` validator.
//!
//! Formats are checked too. llguidance's format regexes are approximations in two
//! known ways, which this test tolerates and counts: `date-time` allows second `60`
//! at any minute (RFC 3339 leap seconds only exist at 23:59:60 UTC) and `email` does
//! not bound the length of its parts. Any other format mismatch fails.
//!
//! The walk never starts an exponent: JSON's grammar allows `1E9135606841`, which
//! no f64 (and so no serde_json) holds; a model does not write such numbers.

use std::path::PathBuf;

use hearth_text::{ConstraintCompiler, ConstraintSpec, Tokenizer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const WALKS_PER_SCHEMA: u64 = 6;
const MAX_STEPS: usize = 20_000;

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HEARTH_TEST_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HEARTH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".local/share/hearth")
        });
    home.join("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn corpus() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/schema_corpus.json"
    );
    let text = std::fs::read_to_string(path).expect("corpus readable");
    serde_json::from_str(&text).expect("corpus is JSON")
}

/// Ids of the tokens that are one ASCII character.
fn one_char_tokens(tok: &Tokenizer) -> Vec<u32> {
    (0..tok.vocab_size() as u32)
        .filter(|&id| tok.decode(&[id], false).is_ok_and(|s| s.len() == 1))
        .collect()
}

#[test]
fn random_walks_through_corpus_schemas_validate() {
    let tok = Tokenizer::from_gguf_file(model_path()).expect("tokenizer of the default model");
    let compiler = ConstraintCompiler::new(&tok).expect("compiler");
    let short = one_char_tokens(&tok);
    let exponents: Vec<u32> = ["e", "E"]
        .iter()
        .filter_map(|t| tok.token_to_id(t))
        .collect();
    let corpus = corpus();
    assert!(
        corpus.len() >= 30,
        "the corpus has {} schemas",
        corpus.len()
    );
    let mut walks = 0;
    let mut tolerated = 0;
    for entry in &corpus {
        let name = entry["name"].as_str().expect("name");
        let schema = &entry["schema"];
        let validator = jsonschema::validator_for(schema)
            .unwrap_or_else(|e| panic!("{name}: the corpus schema is invalid: {e}"));
        let with_formats = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("{name}: the corpus schema is invalid: {e}"));
        let spec = ConstraintSpec::JsonSchema {
            schema: schema.clone(),
            strict: true,
        };
        let start = compiler
            .compile(&spec)
            .unwrap_or_else(|e| panic!("{name}: does not compile: {e}"));
        for seed in 0..WALKS_PER_SCHEMA {
            let mut c = start.clone();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut ids = Vec::new();
            let mut candidates = Vec::new();
            let mut after_digit = false;
            while !c.is_finished() {
                assert!(
                    ids.len() < MAX_STEPS,
                    "{name}/{seed}: no end after {MAX_STEPS} tokens"
                );
                let mask = c.mask().expect("mask");
                candidates.clear();
                candidates.extend(
                    short
                        .iter()
                        .copied()
                        .filter(|&id| mask.allows(id) && !(after_digit && exponents.contains(&id))),
                );
                if candidates.is_empty() {
                    candidates.extend((0..tok.vocab_size() as u32).filter(|&id| mask.allows(id)));
                }
                assert!(!candidates.is_empty(), "{name}/{seed}: nothing allowed");
                let id = candidates[rng.random_range(0..candidates.len())];
                if tok.eos_ids().contains(&id) {
                    break;
                }
                c.accept(id).expect("an allowed token is accepted");
                ids.push(id);
                after_digit = tok
                    .decode(&[id], false)
                    .is_ok_and(|s| s.ends_with(|ch: char| ch.is_ascii_digit()));
            }
            let text = tok.decode(&ids, false).expect("decode");
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name}/{seed}: not JSON ({e}): {text}"));
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}/{seed}: {text}\n{errors:?}");
            for e in with_formats.iter_errors(&value) {
                let msg = e.to_string();
                let known =
                    msg.ends_with("is not a \"date-time\"") || msg.ends_with("is not a \"email\"");
                assert!(known, "{name}/{seed}: {text}\n{msg}");
                tolerated += 1;
            }
            walks += 1;
        }
    }
    assert_eq!(walks, corpus.len() * WALKS_PER_SCHEMA as usize);
    println!("{walks} walks valid; {tolerated} known format approximations (date-time :60, email length)");
}
