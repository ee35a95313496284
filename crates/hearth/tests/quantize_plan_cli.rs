//! `hearth quantize` and `hearth plan` end to end on the tiny llama3 fixture.
mod common;

use common::{hearth_cli, plan_field};
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hearth-models/tests/fixtures/tiny/llama3")
}

#[test]
fn quantize_then_plan_the_gguf() {
    let out = std::env::temp_dir().join(format!("hearth-cli-q8-{}.gguf", std::process::id()));
    let (ok, text) = hearth_cli(&[
        "quantize",
        fixture().to_str().expect("utf-8 path"),
        "--type",
        "q8_0",
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("llama q8_0, 21 tensors"), "{text}");
    let (ok, report) = hearth_cli(&[
        "plan",
        out.to_str().expect("path"),
        "--memory",
        "81MB",
        "--max-model-len",
        "64",
        "--kv-cache-dtype",
        "f32",
    ]);
    let _ = std::fs::remove_file(&out);
    assert!(ok, "{report}");
    // 2 layers * 2 KV heads * 16 dims * K,V * 4 bytes = 512 B a token; 64 tokens a
    // sequence = 32 KiB; (81e6 - 80e6 for the process - weights) / 32 KiB sequences.
    assert_eq!(
        plan_field(&report, "KV cache per token"),
        "512 B (f32 K and V)"
    );
    let seqs: u64 = plan_field(&report, "concurrent full sequences")
        .parse()
        .expect("n");
    let tokens: u64 = plan_field(&report, "KV cache tokens").parse().expect("n");
    assert_eq!(seqs, tokens / 64);
    assert!(seqs > 20 && seqs < 30, "{report}");
}

#[test]
fn plan_and_quantize_reject_bad_input() {
    let (ok, text) = hearth_cli(&["quantize", "/nonexistent", "--type", "q7_0", "-o", "/tmp/x"]);
    assert!(!ok && text.contains("q7_0"), "{text}");
    let (ok, text) = hearth_cli(&["plan", "/nonexistent/model.gguf"]);
    assert!(!ok && text.contains("sizing"), "{text}");
}

/// A folder with a tokenizer converts to a GGUF whose `tokenizer.ggml.*` metadata
/// rebuilds the same tokenizer (hearth-text's GGUF path vs its tokenizer.json path).
#[test]
fn converted_tokenizer_encodes_like_the_folder() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let tok =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hearth-text/tests/fixtures/hf_tiny");
    for (from, name) in [
        (fixture(), "config.json"),
        (fixture(), "model.safetensors"),
        (tok.clone(), "tokenizer.json"),
        (tok, "tokenizer_config.json"),
    ] {
        std::fs::copy(from.join(name), dir.join(name)).expect("copy");
    }
    let out = dir.join("m.gguf");
    let (ok, text) = hearth_cli(&[
        "quantize",
        dir.to_str().expect("path"),
        "--type",
        "f32",
        "-o",
        out.to_str().expect("path"),
    ]);
    assert!(ok, "{text}");
    let from_gguf = hearth_text::Tokenizer::from_gguf_file(&out);
    let from_dir = hearth_text::Tokenizer::from_hf_dir(&dir);
    let loaded = hearth_models::load_gguf(&out).expect("load converted GGUF");
    assert!(
        loaded.metadata.contains_key("tokenizer.chat_template"),
        "chat template not carried over"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let (g, d) = (
        from_gguf.expect("GGUF tokenizer"),
        from_dir.expect("folder tokenizer"),
    );
    assert_eq!(g.vocab_size(), 256);
    for s in [
        "Hello world",
        " the quick brown fox",
        "<|im_start|>user\nhi<|im_end|>",
    ] {
        let (a, b) = (
            g.encode(s, false).expect("gguf"),
            d.encode(s, false).expect("dir"),
        );
        assert_eq!(a, b, "{s:?}");
        assert_eq!(g.decode(&a, false).expect("decode"), s);
    }
    assert_eq!((g.bos_id(), g.eos_id()), (d.bos_id(), d.eos_id()));
}

/// `serve --memory` refuses before loading when the weights (sized as they would be
/// loaded: f32, or the `--quantization` type) or weights plus KV cache do not fit.
#[test]
fn serve_refuses_a_model_over_the_memory_limit() {
    let dir = fixture();
    let dir = dir.to_str().expect("path");
    // Limits just above hearth's own memory (`hearth plan`'s 80 MB "hearth process").
    let (ok, text) = hearth_cli(&["serve", dir, "--port", "0", "--memory", "80.2MB"]);
    assert!(
        !ok && text.contains("weights alone take 361.7 KB"),
        "{text}"
    );
    let (ok, text) = hearth_cli(&[
        "serve",
        dir,
        "--port",
        "0",
        "--memory",
        "80.2MB",
        "--quantization",
        "q8_0",
        "--kv-cache-memory",
        "1MiB",
    ]);
    assert!(
        !ok && text.contains("plus the KV cache (1.05 MB)"),
        "{text}"
    );
}

/// For a folder, plan also lists each `--quantization` choice; smaller types leave
/// room for at least as many sequences.
#[test]
fn plan_of_a_folder_lists_each_type() {
    let dir = fixture();
    let (ok, report) = hearth_cli(&[
        "plan",
        dir.to_str().expect("path"),
        "--memory",
        "81MB",
        "--max-model-len",
        "64",
    ]);
    assert!(ok, "{report}");
    let seqs = |t: &str| -> u64 {
        let row = report
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{t} ")));
        let row = row.unwrap_or_else(|| panic!("no {t} row in:\n{report}"));
        row.split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .expect("count")
    };
    assert_eq!(plan_field(&report, "weights"), "361.7 KB");
    assert!(
        seqs("f32") <= seqs("q8_0") && seqs("q8_0") <= seqs("q4_0"),
        "{report}"
    );
    assert!(seqs("f32") < seqs("q4_0"), "{report}");
}
