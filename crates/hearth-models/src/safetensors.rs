//! The `*.safetensors` files of a Hugging Face model folder, memory-mapped, read as f32.

use crate::ModelError;
use candle_core::safetensors::{MmapedSafetensors, SliceSafetensors};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct SafetensorsDir {
    st: MmapedSafetensors,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The shard files: those named by `model.safetensors.index.json`, else
/// `model.safetensors`, else every `*.safetensors` in the folder.
pub fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Invalid(format!("{}: {e}", index.display())))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Invalid(format!("{} has no weight_map", index.display())))?;
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .filter(|f| !f.contains('/') && !f.contains('\\'));
            let file = file.ok_or_else(|| {
                ModelError::Invalid(format!("weight_map entry of `{name}` is not a file name"))
            })?;
            files.insert(dir.join(file));
        }
        return Ok(files.into_iter().collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = entry.map_err(io(dir))?.path();
        if p.extension().is_some_and(|e| e == "safetensors") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ModelError::Invalid(format!(
            "no *.safetensors in {}",
            dir.display()
        )));
    }
    Ok(files)
}

impl SafetensorsDir {
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let files = shard_files(dir)?;
        for f in &files {
            if !f.is_file() {
                return Err(ModelError::Invalid(format!(
                    "shard {} is missing",
                    f.display()
                )));
            }
        }
        // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on
        // nobody truncating them while the model is loaded (weights are copied out to
        // f32 tensors during load, so the map is not used afterwards).
        let st = unsafe { MmapedSafetensors::multi(&files) }
            .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.display())))?;
        Ok(SafetensorsDir { st })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }

    /// Tensor `name` of exactly `shape`, converted to f32 (F32, F16 and BF16 stored).
    pub fn f32(&self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor, ModelError> {
        let view = self
            .st
            .get(name)
            .map_err(|_| ModelError::Invalid(format!("tensor `{name}` is missing")))?;
        if view.shape() != shape {
            return Err(ModelError::Invalid(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        let t = self.st.load(name, device);
        to_f32(name, t)
    }
}

/// A loaded tensor as f32 (F32, F16 and BF16 stored), errors naming it.
fn to_f32(name: &str, t: candle_core::Result<Tensor>) -> Result<Tensor, ModelError> {
    let t = t.map_err(|e| ModelError::Invalid(format!("tensor `{name}`: {e}")))?;
    match t.dtype() {
        DType::F32 => Ok(t),
        DType::F16 | DType::BF16 => Ok(t.to_dtype(DType::F32)?),
        other => Err(ModelError::Unsupported(format!(
            "tensor `{name}` is {other:?} (want F32, F16 or BF16)"
        ))),
    }
}

/// One safetensors file held in memory: its header parsed and checked, then every
/// tensor loaded as f32 the way `SafetensorsDir::f32` loads it. The fuzz target's entry.
pub fn load_bytes_f32(bytes: &[u8], device: &Device) -> Result<Vec<(String, Tensor)>, ModelError> {
    let st = SliceSafetensors::new(bytes)
        .map_err(|e| ModelError::Invalid(format!("safetensors header: {e}")))?;
    let mut names: Vec<String> = st.tensors().into_iter().map(|(n, _)| n).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let t = to_f32(&n, st.load(&n, device))?;
            Ok((n, t))
        })
        .collect()
}
