//! `hearth quantize` and `hearth plan` end to end on the tiny llama3 fixture.
use std::path::PathBuf;
use std::process::Command;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hearth-models/tests/fixtures/tiny/llama3")
}

fn hearth(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .expect("run hearth");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The value printed after `key` in plan's report.
fn field(report: &str, key: &str) -> String {
    let line = report.lines().find(|l| l.starts_with(key));
    let line = line.unwrap_or_else(|| panic!("no `{key}` in:\n{report}"));
    line[key.len()..].trim().to_string()
}

#[test]
fn quantize_then_plan_the_gguf() {
    let out = std::env::temp_dir().join(format!("hearth-cli-q8-{}.gguf", std::process::id()));
    let (ok, text) = hearth(&[
        "quantize",
        fixture().to_str().expect("utf-8 path"),
        "--type",
        "q8_0",
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("llama q8_0, 21 tensors"), "{text}");
    let (ok, report) = hearth(&[
        "plan",
        out.to_str().expect("path"),
        "--memory",
        "1MB",
        "--max-model-len",
        "64",
    ]);
    let _ = std::fs::remove_file(&out);
    assert!(ok, "{report}");
    // 2 layers * 2 KV heads * 16 dims * K,V * 4 bytes = 512 B a token; 64 tokens a
    // sequence = 32 KiB; (1e6 - weights) / 32 KiB sequences.
    assert_eq!(field(&report, "KV cache per token"), "512 B (f32 K and V)");
    let seqs: u64 = field(&report, "concurrent full sequences")
        .parse()
        .expect("n");
    let tokens: u64 = field(&report, "KV cache tokens").parse().expect("n");
    assert_eq!(seqs, tokens / 64);
    assert!(seqs > 20 && seqs < 30, "{report}");
}

#[test]
fn plan_and_quantize_reject_bad_input() {
    let (ok, text) = hearth(&["quantize", "/nonexistent", "--type", "q7_0", "-o", "/tmp/x"]);
    assert!(!ok && text.contains("q7_0"), "{text}");
    let (ok, text) = hearth(&["plan", "/nonexistent/model.gguf"]);
    assert!(!ok && text.contains("sizing"), "{text}");
}
