//! The web chat page in a real browser: headless Chromium driven by selenium
//! (tests/python/test_web_chat.py) against a spawned `hearth serve`. Chromium,
//! chromedriver and selenium are installed by `.ci/run`; without them this test fails.

mod common;

use std::process::Command;

use common::{Server, MODEL_NAME};

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
