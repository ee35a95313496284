//! `hearth chat` driven through a pipe against a real server: history carried between
//! turns, /system, /clear, /save, and Ctrl-C (SIGINT) stopping an answer without leaving.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, MODEL_NAME};
use serde_json::{json, Value};

const MAX_TOKENS: u32 = 24;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-chat-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn chat(base: &str, home: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(["chat", "--url", base, "--temperature", "0"])
        .args(extra)
        .env("HEARTH_HOME", home)
        .env_remove("HEARTH_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn saved(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()))
}

/// The same greedy request, asked directly of the API.
async fn direct_answer(s: &Server, messages: Value) -> String {
    let body = json!({"model": MODEL_NAME, "messages": messages, "temperature": 0, "max_tokens": MAX_TOKENS});
    let (status, v) = common::post(&s.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{v}");
    v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string()
}

fn turn(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_turns_carry_history_and_commands_work() {
    let s = Server::start(&[]);
    let dir = temp_dir("pipe");
    let p = |n: &str| dir.join(n).display().to_string();
    let script = format!(
        "What is the capital of France?\n/save {one}\nAnd what did I just ask you?\n/save {two}\n\
         /system You are a pirate. Answer like one.\n/clear\n/save {three}\n\"\"\"\nSay hello\nto me.\n\"\"\"\n\
         /save {four}\n/nope\n/exit\nnot sent\n",
        one = p("one.json"),
        two = p("two.json"),
        three = p("three.json"),
        four = p("four.json"),
    );
    let max = MAX_TOKENS.to_string();
    let mut child = chat(&s.base, &dir, &["--max-tokens", &max])
        .spawn()
        .expect("hearth chat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("chatting with {MODEL_NAME}")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown command /nope"), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");

    let q1 = "What is the capital of France?";
    let q2 = "And what did I just ask you?";
    let one = saved(&dir.join("one.json"));
    assert_eq!(one["model"], MODEL_NAME);
    let a1 = one["messages"][1]["content"]
        .as_str()
        .expect("first answer")
        .to_string();
    assert!(!a1.trim().is_empty(), "{one}");
    assert_eq!(
        one["messages"],
        json!([turn("user", q1), turn("assistant", &a1)])
    );
    assert_eq!(a1, direct_answer(&s, json!([turn("user", q1)])).await);

    // The second request carried the first turn: its answer is the one the API gives
    // with that history, not the one it gives to the question alone.
    let two = saved(&dir.join("two.json"));
    let a2 = two["messages"][3]["content"]
        .as_str()
        .expect("second answer")
        .to_string();
    assert_eq!(
        two["messages"],
        json!([
            turn("user", q1),
            turn("assistant", &a1),
            turn("user", q2),
            turn("assistant", &a2)
        ])
    );
    let with_history = json!([turn("user", q1), turn("assistant", &a1), turn("user", q2)]);
    assert_eq!(a2, direct_answer(&s, with_history).await);
    assert_ne!(a2, direct_answer(&s, json!([turn("user", q2)])).await);
    // Answers stream to stdout, one after the other.
    let i1 = stdout
        .find(&a1)
        .unwrap_or_else(|| panic!("no first answer in {stdout}"));
    // After the first (the two may be the same text: a small model may repeat itself).
    assert!(
        stdout[i1 + a1.len()..].contains(&a2),
        "no second answer after the first in {stdout}"
    );

    // /clear kept the /system prompt and dropped the turns.
    let system = "You are a pirate. Answer like one.";
    assert_eq!(
        saved(&dir.join("three.json"))["messages"],
        json!([turn("system", system)])
    );
    // A """ block is one message, sent with the system prompt.
    let four = saved(&dir.join("four.json"));
    let a4 = four["messages"][2]["content"]
        .as_str()
        .expect("block answer")
        .to_string();
    let block = "Say hello\nto me.";
    assert_eq!(
        four["messages"],
        json!([
            turn("system", system),
            turn("user", block),
            turn("assistant", &a4)
        ])
    );
    assert_eq!(
        a4,
        direct_answer(&s, json!([turn("system", system), turn("user", block)])).await
    );
    // /exit left before the last line; piped input is not written to the history file.
    assert!(!dir.join("chat_history").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Collects a child's stdout as it comes.
fn capture(child: &mut Child) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

fn sigint(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_an_answer_and_the_chat_goes_on() {
    let s = Server::start(&[]);
    let dir = temp_dir("sigint");
    let mut child = chat(&s.base, &dir, &["--max-tokens", "4000"])
        .spawn()
        .expect("hearth chat");
    let out = capture(&mut child);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"Write a very long story about a dragon.\n")
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.lock().expect("lock").len() < 20 {
        assert!(Instant::now() < deadline, "no answer streamed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = s.stats().await;
    assert_eq!(before["running"], 1, "{before}");
    sigint(&child);
    // The server aborted the generation: the stream was dropped.
    let idle = s.wait_idle(30).await;
    assert_eq!(
        idle["aborted_requests"].as_u64(),
        before["aborted_requests"].as_u64().map(|n| n + 1),
        "{idle}"
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "chat left on Ctrl-C during an answer"
    );
    let path = dir.join("stopped.json");
    stdin
        .write_all(format!("/save {}\n", path.display()).as_bytes())
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no /save after the stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let v = saved(&path);
    let msgs = v["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 2, "{v}");
    let partial = msgs[1]["content"].as_str().expect("partial answer");
    assert!(!partial.is_empty(), "{v}");
    let printed = String::from_utf8_lossy(&out.lock().expect("lock")).into_owned();
    assert!(
        printed.starts_with(partial),
        "saved {partial:?}, printed {printed:?}"
    );
    // Ctrl-C at an empty prompt leaves, cleanly.
    sigint(&child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "Ctrl-C at the prompt did not leave"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_sends_its_api_key() {
    let home = temp_dir("key");
    let made = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["keys", "create", "--name", "chat"])
        .env("HEARTH_HOME", &home)
        .output()
        .expect("hearth keys create");
    assert!(made.status.success(), "{made:?}");
    let key = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_hearth"));
    serve
        .arg("serve")
        .arg(common::model_path())
        .args(["--port", "0", "--served-model-name", MODEL_NAME])
        .args(["--kv-cache-memory", "256MiB"])
        .env("HEARTH_HOME", &home)
        .env("RUST_LOG", "warn");
    let s = Server::spawn(serve);

    let refused = chat(&s.base, &home, &[]).output().expect("hearth chat");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(err.contains("401") && err.contains("API key"), "{err}");

    let mut child = chat(&s.base, &home, &["--api-key", &key, "--max-tokens", "8"])
        .spawn()
        .expect("hearth chat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"Hello!\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(!stdout.trim().is_empty(), "no answer: {stderr}");
    drop(s);
    let _ = std::fs::remove_dir_all(&home);
}
