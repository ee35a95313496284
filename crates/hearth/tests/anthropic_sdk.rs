//! The official `anthropic` Python SDK against the real server
//! (tests/python/test_anthropic_sdk.py; `.ci/run` installs the SDK).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, MODEL_NAME};

#[test]
fn anthropic_python_sdk_messages_and_stream() {
    let check = Command::new("python3")
        .args(["-c", "import anthropic"])
        .output();
    match check {
        Err(e) => panic!("python3 is needed for this test: {e}"),
        Ok(o) if !o.status.success() => panic!(
            "the `anthropic` Python package is missing (pip install anthropic): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/test_anthropic_sdk.py");
    let s = Server::start(&[]);
    let out = Command::new("python3")
        .arg(&script)
        .arg(&s.base)
        .arg(MODEL_NAME)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "SDK script failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("anthropic SDK checks passed"));
}
