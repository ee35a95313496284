//! The official `openai` Python SDK against the real server
//! (tests/python/test_openai_sdk.py; `.ci/run` installs the SDK).

mod common;

use common::{run_python_sdk_script, Server};

#[test]
fn openai_python_sdk_chat_and_completions() {
    let s = Server::start(&[]);
    let out = run_python_sdk_script("openai", "test_openai_sdk.py", &[&s.base]);
    assert!(out.contains("openai SDK checks passed"), "{out}");
}
