//! `hearth serve` with no model argument serves the default model from the store, and
//! `hearth models list` shows it with its size and hash. No network: the store is
//! filled from the test model, as `hearth pull` would have left it.

mod common;

use std::process::Command;

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

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(["serve", "--port", "0", "--kv-cache-memory", "64MiB"])
        .env("HEARTH_HOME", &home)
        .env("HEARTH_PYTHON", "/nonexistent/python-must-not-be-needed");
    let server = common::Server::spawn(cmd);
    let models: serde_json::Value = reqwest::get(server.url("/v1/models"))
        .await
        .expect("GET /v1/models")
        .json()
        .await
        .expect("JSON");
    drop(server);
    let _ = std::fs::remove_dir_all(&home);
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids.first().copied(), Some(DEFAULT_MODEL), "{models}");
}
