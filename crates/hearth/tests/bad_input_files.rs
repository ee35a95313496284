//! The bad-input suite, file side: `hearth serve` on crafted GGUF files, hostile
//! safetensors folders and path-traversal names exits non-zero, quickly, with a
//! clear message and no panic. The files are small buffers written to a temp dir.

mod bad_input_support;
mod common;

use std::path::{Path, PathBuf};

use bad_input_support::files::{assert_refused, llama_header, safetensors, Gguf, Kv};
use serde_json::{json, Value};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("hearth-bad-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("home")).expect("temp dir");
        Dir(d)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    fn home(&self) -> PathBuf {
        self.0.join("home")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A header whose only key-value pair has a string length of `len`.
fn long_key(len: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(len.to_le_bytes());
    b.extend(b"general.architecture");
    b
}

/// One key holding an array of `count` u32 items (only 4 of them present).
fn long_array(count: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(11u64.to_le_bytes());
    b.extend(b"general.arr");
    b.extend(9u32.to_le_bytes());
    b.extend(4u32.to_le_bytes());
    b.extend(count.to_le_bytes());
    b.extend([0u8; 16]);
    b
}

#[test]
fn crafted_gguf_files_are_refused_clearly() {
    let d = Dir::new("gguf");
    let real = std::fs::read(common::model_path()).expect("read the test model");
    let mut lying_tensors = llama_header(1);
    lying_tensors.tensor_count = Some(1 << 40);
    let mut lying_kvs = llama_header(1);
    lying_kvs.kv_count = Some(1 << 40);
    let mut version = llama_header(1).bytes();
    version[4] = 99;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "gguf"),
        ("wrong magic", b"GGML\x03\0\0\0garbage".to_vec(), "gguf"),
        ("version 99", version, "version"),
        ("truncated header", real[..4096].to_vec(), "gguf"),
        ("truncated data", real[..(1 << 20)].to_vec(), "gguf"),
        ("lying tensor count", lying_tensors.bytes(), "gguf"),
        ("lying kv count", lying_kvs.bytes(), "gguf"),
        (
            "offset past the end",
            Gguf::default()
                .kv("general.architecture", Kv::Str("llama".into()))
                .tensor("token_embd.weight", &[32, 8], 0, 1 << 60)
                .bytes(),
            "past the end",
        ),
        (
            "huge dims",
            Gguf::default()
                .tensor("token_embd.weight", &[1 << 40, 1 << 40], 0, 0)
                .bytes(),
            "overflows",
        ),
        (
            "64 dims",
            Gguf::default().tensor("t", &[4; 64], 0, 0).bytes(),
            "gguf",
        ),
        (
            "unknown dtype",
            Gguf::default().tensor("t", &[32], 999, 0).bytes(),
            "dtype",
        ),
        ("string length 2^62", long_key(1 << 62), "gguf"),
        ("array of 2^60 items", long_array(1 << 60), "gguf"),
        (
            "alignment 0",
            llama_header(1).kv("general.alignment", Kv::U32(0)).bytes(),
            "alignment",
        ),
        (
            "zero heads",
            llama_header(1)
                .kv("llama.attention.head_count", Kv::U32(0))
                .bytes(),
            "heads",
        ),
        ("block_count 2^50", llama_header(1 << 50).bytes(), "blk.1"),
        ("block_count 2", llama_header(2).bytes(), "blk.1"),
        // Everything the model needs is there: the tokenizer is what is missing.
        ("no tokenizer", llama_header(1).bytes(), "tokenizer"),
    ];
    let n = cases.len();
    for (name, bytes, says) in cases {
        let file = d.write(&format!("{}.gguf", name.replace(' ', "-")), &bytes);
        let err = assert_refused(&file, says, &d.home());
        eprintln!("{name}: {}", err.trim());
    }
    eprintln!("crafted GGUF cases: {n}");
}

/// The tiny Qwen3 fixture folder (config, weights, tokenizer) with `weights` as
/// its model.safetensors.
fn hf_folder(d: &Dir, name: &str, weights: &[u8]) -> PathBuf {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    let model = crates.join("hearth-models/tests/fixtures/tiny/qwen3");
    let tok = crates.join("hearth-text/tests/fixtures/hf_tiny");
    let dir = d.0.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (from, f) in [
        (&model, "config.json"),
        (&tok, "tokenizer.json"),
        (&tok, "tokenizer_config.json"),
    ] {
        std::fs::copy(from.join(f), dir.join(f)).expect("copy fixture");
    }
    std::fs::write(dir.join("model.safetensors"), weights).expect("write weights");
    dir
}

/// The fixture's safetensors with its header changed by `edit`.
fn edited(real: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(real[..8].try_into().expect("8 bytes")) as usize;
    let mut header: Value = serde_json::from_slice(&real[8..8 + n]).expect("header");
    edit(&mut header);
    safetensors(&header.to_string(), None, &real[8 + n..])
}

#[test]
fn hostile_safetensors_folders_are_refused_clearly() {
    let d = Dir::new("st");
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    let real =
        std::fs::read(crates.join("hearth-models/tests/fixtures/tiny/qwen3/model.safetensors"))
            .expect("fixture");
    let embed = "model.embed_tokens.weight";
    let norm = "model.layers.0.input_layernorm.weight";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", Vec::new(), "safetensors"),
        (
            "header longer than the file",
            safetensors("{}", Some(1 << 20), b""),
            "header",
        ),
        (
            "header length 2^63",
            safetensors("{}", Some(1 << 63), b""),
            "header",
        ),
        (
            "header not JSON",
            safetensors("{not json", None, b""),
            "safetensors",
        ),
        (
            "truncated data",
            real[..real.len() / 2].to_vec(),
            "safetensors",
        ),
        (
            "overlapping offsets",
            edited(&real, |h| h[norm]["data_offsets"] = json!([0, 256])),
            "safetensors",
        ),
        (
            "offsets past the end",
            edited(&real, |h| {
                h[norm]["data_offsets"] = json!([1u64 << 40, (1u64 << 40) + 256])
            }),
            "safetensors",
        ),
        (
            "shape disagrees with offsets",
            edited(&real, |h| h[embed]["shape"] = json!([1 << 30, 1 << 30])),
            "safetensors",
        ),
        (
            "unknown dtype",
            edited(&real, |h| h[embed]["dtype"] = json!("XX")),
            "safetensors",
        ),
        (
            "integer weights",
            edited(&real, |h| h[embed]["dtype"] = json!("I32")),
            "i32",
        ),
    ];
    let n = cases.len();
    for (name, bytes, says) in cases {
        let dir = hf_folder(&d, &name.replace(' ', "-"), &bytes);
        let err = assert_refused(&dir, says, &d.home());
        eprintln!("{name}: {}", err.trim());
    }
    eprintln!("hostile safetensors cases: {n}");
}

#[test]
fn path_traversal_model_names_are_refused() {
    let d = Dir::new("names");
    for name in [
        "../x",
        "../../etc/passwd",
        "../../../../../../no/such/file",
        "models/../../x",
        "x\u{1}y",
    ] {
        let err = assert_refused(Path::new(name), "invalid model name", &d.home());
        eprintln!("{name}: {}", err.trim());
    }
    // Nothing was created outside the home.
    assert!(!d.0.join("x").exists());
}

/// The real model with `llama.context_length` (a u32) set to `value`.
fn with_context_length(real: &[u8], value: u32) -> Vec<u8> {
    let key = b"llama.context_length";
    let at = real
        .windows(key.len())
        .position(|w| w == key)
        .expect("context_length key")
        + key.len();
    assert_eq!(real[at..at + 4], 4u32.to_le_bytes(), "stored as a u32");
    let mut b = real.to_vec();
    b[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_declared_context_is_refused_per_request_not_allocated() {
    let d = Dir::new("ctx");
    let real = std::fs::read(common::model_path()).expect("read the test model");
    let file = d.write("huge-ctx.gguf", &with_context_length(&real, u32::MAX));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(&file)
        .args(["--port", "0", "--served-model-name", common::MODEL_NAME])
        .args(["--kv-cache-memory", "64MiB"])
        .env("HEARTH_HOME", d.home())
        .env("RUST_LOG", "warn");
    let s = common::Server::spawn(cmd);
    let chat = s.url("/v1/chat/completions");
    let msgs = json!([{"role": "user", "content": "hi"}]);
    // Unset, max_tokens is the rest of a 4-billion-token context: a clear 400.
    for max in [Value::Null, json!(4_000_000_000u64)] {
        let body = json!({"model": common::MODEL_NAME, "messages": msgs, "max_tokens": max});
        let (st, v) = common::post(&chat, &body).await;
        assert_eq!(st, 400, "{v}");
        common::assert_error_shape(&v);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("KV blocks"),
            "{v}"
        );
    }
    let body = json!({"model": common::MODEL_NAME, "messages": msgs, "max_tokens": 4});
    let (st, v) = common::post(&chat, &body).await;
    assert_eq!(st, 200, "{v}");
    let kb = common::rss_kb(s.pid());
    assert!(
        kb < 1 << 20,
        "RSS {kb} kB: something was sized by the context"
    );
}
