//! schemathesis (PyPI; `.ci/run` installs it) generates requests from /openapi.json
//! for every operation, a bounded number per phase: no 5xx, and every error answer
//! in its API's shape (tests/python/schemathesis_hooks.py).

mod common;

use std::process::Command;

use common::{model_path, Server};

#[test]
fn schemathesis_finds_no_server_error_and_only_shaped_errors() {
    let found = Command::new("st").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "schemathesis is needed for this test: pip install schemathesis (.ci/run does)"
    );
    // Short answers keep the generated generations quick; the model is named
    // "default" as the schema's examples name it.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve")
        .arg(model_path())
        .args(["--port", "0", "--served-model-name", "default"])
        .args(["--max-model-len", "256", "--max-output-tokens", "16"])
        .args(["--kv-cache-memory", "128MiB"])
        .env("RUST_LOG", "error");
    let s = Server::spawn(cmd);
    let hooks_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python");
    let out = Command::new("st")
        .arg("run")
        .arg(s.url("/openapi.json"))
        .args(["--checks", "not_a_server_error,error_in_api_shape"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "60",
        ])
        .args(["--seed", "20261125", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", hooks_dir)
        .output()
        .expect("running schemathesis");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran every operation.
    assert!(text.contains("Tested: 14"), "{text}");
}
