//! `hearth serve NAME` loads a stored model only when its file still has the
//! manifest's SHA-256: a changed byte is refused with a message naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{model_path, Server};
use hearth_models::integrity::sha256_file;
use hearth_models::store::{Manifest, Source, Store, DEFAULT_MODEL};

/// A store in a fresh temp home holding a copy of the test model as `name`.
fn store_with_copy(tag: &str, name: &str) -> (PathBuf, PathBuf) {
    let home = std::env::temp_dir().join(format!("hearth-integrity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let store = Store::open(home.clone()).expect("store");
    let src = model_path();
    let file = "model.gguf";
    let staged = store.staging_path(name, file).expect("staging");
    std::fs::copy(&src, &staged).expect("copy model");
    let manifest = Manifest {
        name: name.to_string(),
        file: file.to_string(),
        size: std::fs::metadata(&staged).expect("size").len(),
        sha256: sha256_file(&staged, |_| {}).expect("hash"),
        source: Source::Local {
            path: src.display().to_string(),
        },
    };
    let stored = store.commit(&manifest, &staged).expect("commit");
    (home, stored.path)
}

/// Flips one byte in the middle of the file (in the weights, not the header).
fn tamper(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

fn serve_cmd(home: &Path, model: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("serve");
    if let Some(m) = model {
        cmd.arg(m);
    }
    cmd.args(["--port", "0", "--kv-cache-memory", "64MiB"])
        .env("HEARTH_HOME", home)
        .env("RUST_LOG", "warn");
    cmd
}

fn assert_refused(mut cmd: Command, file: &Path) {
    let out = cmd.output().expect("run hearth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a tampered model was served: {err}");
    assert!(
        err.contains(&file.display().to_string()),
        "the file is not named: {err}"
    );
    assert!(
        err.contains("refusing to load") && err.contains("sha256"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_models_are_checked_at_load() {
    let (home, file) = store_with_copy("named", "local-smol");
    // Intact: served, and it answers.
    let s = Server::spawn(serve_cmd(&home, Some("local-smol")));
    let models = reqwest::get(s.url("/v1/models"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(models.contains("local-smol"), "{models}");
    drop(s);

    tamper(&file);
    assert_refused(serve_cmd(&home, Some("local-smol")), &file);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_tampered_default_model_is_refused_not_replaced() {
    let (home, file) = store_with_copy("default", DEFAULT_MODEL);
    tamper(&file);
    let before = std::fs::read(&file).expect("read");
    let mut cmd = serve_cmd(&home, None);
    // No network either way: a refusal must not try to fetch a new copy.
    cmd.env("PIP_INDEX_URL", "http://127.0.0.1:9/");
    assert_refused(cmd, &file);
    assert_eq!(
        std::fs::read(&file).expect("read"),
        before,
        "the file was replaced"
    );
    let _ = std::fs::remove_dir_all(&home);
}
