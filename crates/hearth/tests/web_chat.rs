//! The web chat page in a real browser: Debian's headless Chromium driven by playwright-core
//! (tests/web/web_chat.mjs, run with node) against a spawned `hearth serve`. `.ci/run`
//! installs chromium, node and the pinned playwright-core (`npm ci` in tests/web); without
//! them this test fails, naming what to install. Screenshots go to the CI artefacts folder.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{model_path, Server, MODEL_NAME};

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn web_dir() -> PathBuf {
    repo_root().join("tests/web")
}

/// Where screenshots are kept: `$HEARTH_CI_ARTIFACTS` (relative to the repository root),
/// else `target/ci-artifacts`; created here.
fn artifacts_dir() -> PathBuf {
    let dir = match std::env::var_os("HEARTH_CI_ARTIFACTS") {
        Some(d) if !d.is_empty() => repo_root().join(d),
        _ => repo_root().join("target/ci-artifacts"),
    };
    std::fs::create_dir_all(&dir).expect("creating the CI artefacts folder");
    dir
}

/// Fails naming what to install when a browser piece is missing.
fn require_browser() {
    let found = |prog: &str| {
        Command::new(prog)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let chromium = std::env::var("HEARTH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = Vec::new();
    if !found(&chromium) {
        missing.push(format!("chromium at {chromium} (apt-get install chromium)"));
    }
    if !found("node") {
        missing.push("node (apt-get install nodejs npm)".to_string());
    }
    if !web_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push(format!(
            "playwright-core in {} (npm ci --prefix tests/web; .ci/run does it)",
            web_dir().join("node_modules").display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the web chat browser test needs: {}",
        missing.join(", ")
    );
}

/// Runs the browser script with `args` after BASE and MODEL; returns its stdout. The
/// screenshot paths it prints are written past the test harness's capture, so they show
/// in CI's log.
fn run_browser(base: &str, shot: &Path, key: Option<&str>) -> String {
    let _ = std::fs::remove_file(shot);
    let mut cmd = Command::new("node");
    cmd.arg(web_dir().join("web_chat.mjs"))
        .args([base, MODEL_NAME])
        .arg(shot);
    if let Some(k) = key {
        cmd.arg(k);
    }
    let out = cmd.output().expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let shots: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("screenshot: "))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "web chat screenshots: {}",
        shots.join(", ")
    );
    assert!(
        out.status.success(),
        "browser script failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    stdout
}

#[test]
fn web_chat_streams_stops_and_keeps_conversations_in_chromium() {
    require_browser();
    let s = Server::start(&[]);
    let dir = artifacts_dir();
    for extra in ["web_chat_streaming.png", "web_chat_stopped.png"] {
        let _ = std::fs::remove_file(dir.join(extra));
    }
    let out = run_browser(&s.base, &dir.join("web_chat.png"), None);
    assert!(out.contains("web chat OK"), "{out}");
    for extra in ["web_chat_streaming.png", "web_chat_stopped.png"] {
        assert!(dir.join(extra).is_file(), "no {extra}: {out}");
    }
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
    let shot = artifacts_dir().join("web_chat_key.png");
    let out = run_browser(&s.base, &shot, Some(&key));
    assert!(out.contains("web chat with key OK"), "{out}");
    drop(s);
    let _ = std::fs::remove_dir_all(&home);
}
