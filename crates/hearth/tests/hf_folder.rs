//! `hearth serve DIR` on a Hugging Face folder: the tiny Qwen3 fixture of
//! hearth-models plus the tiny tokenizer of hearth-text, copied into a temp folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{post, Server};
use serde_json::{json, Value};

const NAME: &str = "tiny-qwen3";

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/")
        .to_path_buf()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

/// A folder named `tiny-qwen3` holding the model and tokenizer files.
fn make_folder() -> PathBuf {
    let root = std::env::temp_dir().join(format!("hearth-hf-serve-{}", std::process::id()));
    let dir = root.join(NAME);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let model = crates_dir().join("hearth-models/tests/fixtures/tiny/qwen3");
    let tok = crates_dir().join("hearth-text/tests/fixtures/hf_tiny");
    for (from, f) in [
        (&model, "config.json"),
        (&model, "model.safetensors"),
        (&tok, "tokenizer.json"),
        (&tok, "tokenizer_config.json"),
        (&tok, "generation_config.json"),
    ] {
        std::fs::copy(from.join(f), dir.join(f)).expect("copy fixture");
    }
    // top_k 1 as the model's default makes unset-sampling requests greedy, which
    // shows the defaults are applied.
    let gen_path = dir.join("generation_config.json");
    let mut gen = read_json(&gen_path);
    gen["top_k"] = json!(1);
    gen["temperature"] = json!(1.0);
    std::fs::write(&gen_path, gen.to_string()).expect("write generation_config.json");
    dir
}

fn start(dir: &Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(dir)
        .args(["--port", "0", "--kv-cache-memory", "16MiB"])
        .env("RUST_LOG", "warn");
    Server::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_a_hugging_face_folder() {
    let dir = make_folder();
    let s = start(&dir);

    // Served under the folder's name.
    let models: Value = reqwest::get(s.url("/v1/models"))
        .await
        .expect("GET /v1/models")
        .json()
        .await
        .expect("json");
    assert_eq!(models["data"][0]["id"], NAME, "{models}");

    // Chat: the prompt is the config's template as transformers renders it.
    let renders = read_json(&crates_dir().join("hearth-text/tests/fixtures/hf_tiny/renders.json"));
    let want = renders["renders"]
        .as_array()
        .expect("renders")
        .iter()
        .find(|e| {
            e["template"] == "qwen3"
                && e["conversation"] == "user_only"
                && e["add_generation_prompt"] == true
                && e["kwargs"].as_object().is_some_and(|k| k.is_empty())
        })
        .expect("render entry");
    let tok = hearth_text::Tokenizer::from_hf_dir(&dir).expect("tokenizer");
    let prompt_len = tok
        .encode(want["expected"].as_str().expect("text"), true)
        .expect("encode")
        .len();
    let (status, v) = post(
        &s.url("/v1/chat/completions"),
        &json!({"model": NAME, "messages": want["messages"], "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], NAME);
    let usage = &v["usage"];
    assert_eq!(usage["prompt_tokens"], prompt_len, "{v}");
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    assert!((1..=4).contains(&completion), "{v}");
    assert_eq!(usage["total_tokens"], prompt_len as u64 + completion);
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");

    // chat_template_kwargs reach the template: Qwen3's enable_thinking false.
    let no_think = renders["renders"]
        .as_array()
        .expect("renders")
        .iter()
        .find(|e| {
            e["template"] == "qwen3"
                && e["conversation"] == "user_only"
                && e["kwargs"] == json!({"enable_thinking": false})
        })
        .expect("render entry");
    let no_think_len = tok
        .encode(no_think["expected"].as_str().expect("text"), true)
        .expect("encode")
        .len();
    assert!(no_think_len > prompt_len);
    let (status, v) = post(
        &s.url("/v1/chat/completions"),
        &json!({"model": NAME, "messages": want["messages"], "max_tokens": 1,
                "chat_template_kwargs": {"enable_thinking": false}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], no_think_len, "{v}");

    // Greedy ids of the reference prompt equal transformers' (reference.json).
    let reference =
        read_json(&crates_dir().join("hearth-models/tests/fixtures/tiny/qwen3/reference.json"));
    let greedy: Vec<u32> = reference["decode"]
        .as_array()
        .expect("decode")
        .iter()
        .map(|d| d["token"].as_u64().expect("token") as u32)
        .collect();
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"model": NAME, "prompt": reference["prompt"], "max_tokens": greedy.len(),
                "temperature": 0, "logprobs": 0, "ignore_eos": true}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let tokens: Vec<String> =
        serde_json::from_value(v["choices"][0]["logprobs"]["tokens"].clone()).expect("tokens");
    let want_tokens: Vec<String> = greedy
        .iter()
        .map(|&id| tok.decode(&[id], false).expect("decode"))
        .collect();
    // Byte-level BPE pieces of an ASCII corpus: each id has its own text.
    for &id in &greedy {
        let piece = tok.id_to_token(id).expect("piece");
        assert_eq!(tok.token_to_id(&piece), Some(id));
    }
    assert_eq!(tokens, want_tokens, "greedy ids {greedy:?}: {v}");
    assert_eq!(v["usage"]["completion_tokens"], greedy.len());

    // No sampling fields: generation_config.json's top_k 1 makes it greedy too.
    let body = json!({"model": NAME, "prompt": reference["prompt"], "max_tokens": greedy.len(),
                      "logprobs": 0, "ignore_eos": true, "seed": 7});
    let (status, v) = post(&s.url("/v1/completions"), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["logprobs"]["tokens"],
        json!(want_tokens),
        "{v}"
    );
    // The request's own top_k wins over the default (seeded, so this is stable).
    let mut own = body.clone();
    own["top_k"] = json!(0);
    let (status, v) = post(&s.url("/v1/completions"), &own).await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(
        v["choices"][0]["logprobs"]["tokens"],
        json!(want_tokens),
        "{v}"
    );

    // Anthropic Messages with no sampling fields answers as greedy chat does.
    let user = json!([{"role": "user", "content": "Hello there!"}]);
    let (_, chat) = post(
        &s.url("/v1/chat/completions"),
        &json!({"model": NAME, "messages": user, "max_tokens": 6, "temperature": 0}),
    )
    .await;
    let (status, msg) = post(
        &s.url("/v1/messages"),
        &json!({"model": NAME, "messages": user, "max_tokens": 6}),
    )
    .await;
    assert_eq!(status, 200, "{msg}");
    let chat_text = chat["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    assert!(!chat_text.is_empty(), "{chat}");
    assert_eq!(msg["content"][0]["text"], chat_text, "{msg} vs {chat}");

    drop(s);
    let _ = std::fs::remove_dir_all(dir.parent().expect("root"));
}
