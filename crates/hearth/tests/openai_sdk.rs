//! The official `openai` Python SDK against the real server
//! (tests/python/test_openai_sdk.py; `.ci/run` installs the SDK).

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

#[test]
fn openai_python_sdk_chat_and_completions() {
    let check = Command::new("python3")
        .args(["-c", "import openai"])
        .output();
    match check {
        Err(e) => panic!("python3 is needed for this test: {e}"),
        Ok(o) if !o.status.success() => panic!(
            "the `openai` Python package is missing (pip install openai): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/test_openai_sdk.py");
    let s = Server::start(&[]);
    let out = Command::new("python3")
        .arg(&script)
        .arg(&s.base)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "SDK script failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai SDK checks passed"));
}
