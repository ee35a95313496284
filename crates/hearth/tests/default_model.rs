//! `hearth serve` with no model argument serves the default model from the store, and
//! `hearth models list` shows it with its size and hash. No network: the store is
//! filled from the test model, as `hearth pull` would have left it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hearth_models::store::{find_known, Manifest, Source, Store, DEFAULT_MODEL};

fn store_with_default_model(home: &std::path::Path) -> String {
    let known = find_known("default").expect("the default model is registered");
    let store = Store::open(home.to_path_buf()).expect("store opens");
    let staged = store
        .staging_path(DEFAULT_MODEL, &known.file)
        .expect("staging path");
    std::fs::copy(common::model_path(), &staged).expect("copy model");
    let manifest = Manifest {
        name: DEFAULT_MODEL.to_string(),
        file: known.file.clone(),
        size: known.size,
        sha256: known.sha256.clone(),
        source: Source::Local {
            path: "test".into(),
        },
    };
    store.commit(&manifest, &staged).expect("commit");
    known.sha256
}

#[tokio::test]
async fn serve_without_a_model_uses_the_stored_default() {
    let home = std::env::temp_dir().join(format!("hearth-default-{}", std::process::id()));
    let sha = store_with_default_model(&home);

    let list = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["models", "list"])
        .env("HEARTH_HOME", &home)
        .output()
        .expect("models list runs");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}");
    assert!(
        text.contains(DEFAULT_MODEL) && text.contains(&sha),
        "{text}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--port", "0", "--kv-cache-memory", "64MiB"])
        .env("HEARTH_HOME", &home)
        .env("HEARTH_PYTHON", "/nonexistent/python-must-not-be-needed")
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("hearth listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(120));
    let models = match &base {
        Ok(b) => Some(fetch_json(&format!("{b}/v1/models")).await),
        Err(_) => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&home);
    let models = models
        .expect("serve printed its address")
        .expect("GET /v1/models");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids.first().copied(), Some(DEFAULT_MODEL), "{models}");
}

async fn fetch_json(url: &str) -> reqwest::Result<serde_json::Value> {
    reqwest::get(url).await?.json().await
}
