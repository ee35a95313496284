//! The web chat page in a real browser: headless Chromium driven by selenium
//! (tests/python/test_web_chat.py) against a spawned `hearth serve`. Chromium,
//! chromedriver and selenium are installed by `.ci/run`; without them this test fails.

mod common;

use std::process::Command;

use common::{model_path, Server, MODEL_NAME};

/// Fails naming what to install when a browser piece is missing.
fn require_browser() {
    let found = |prog: &str| {
        Command::new(prog)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !found("chromium") {
        missing.push("chromium (apt-get install chromium)");
    }
    if !found("chromedriver") {
        missing.push("chromedriver (apt-get install chromium-driver)");
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !selenium {
        missing.push("the selenium Python package (pip install selenium, version as in .ci/run)");
    }
    assert!(
        missing.is_empty(),
        "the web chat browser test needs: {}",
        missing.join(", ")
    );
}

#[test]
fn web_chat_streams_stops_and_keeps_conversations_in_chromium() {
    require_browser();
    let s = Server::start(&[]);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_chat.png");
    let _ = std::fs::remove_file(&shot);
    let out = common::run_python_sdk_script(
        "selenium",
        "test_web_chat.py",
        &[&s.base, MODEL_NAME, &shot.display().to_string()],
    );
    assert!(out.contains("web chat OK"), "{out}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    println!("{out}");
}

/// A server whose home holds an API key: the page still loads, and its API calls carry
/// the key typed into its key field.
#[test]
fn web_chat_sends_the_api_key_from_its_field() {
    require_browser();
    let home = std::env::temp_dir().join(format!("hearth-web-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("temp home");
    let made = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["keys", "create", "--name", "web"])
        .env("HEARTH_HOME", &home)
        .output()
        .expect("hearth keys create");
    assert!(made.status.success(), "{made:?}");
    let key = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(key.starts_with("hth_"), "{key}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(model_path())
        .args(["--port", "0", "--served-model-name", MODEL_NAME])
        .args(["--kv-cache-memory", "256MiB"])
        .env("HEARTH_HOME", &home)
        .env("RUST_LOG", "warn");
    let s = Server::spawn(cmd);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_chat_key.png");
    let out = common::run_python_sdk_script(
        "selenium",
        "test_web_chat.py",
        &[&s.base, MODEL_NAME, &shot.display().to_string(), &key],
    );
    assert!(out.contains("web chat with key OK"), "{out}");
    drop(s);
    let _ = std::fs::remove_dir_all(&home);
}
