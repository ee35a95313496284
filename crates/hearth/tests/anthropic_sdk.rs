//! The official `anthropic` Python SDK against the real server
//! (tests/python/test_anthropic_sdk.py; `.ci/run` installs the SDK).

mod common;

use common::{run_python_sdk_script, Server, MODEL_NAME};

#[test]
fn anthropic_python_sdk_messages_and_stream() {
    let s = Server::start(&[]);
    let out = run_python_sdk_script("anthropic", "test_anthropic_sdk.py", &[&s.base, MODEL_NAME]);
    assert!(out.contains("anthropic SDK checks passed"), "{out}");
}
