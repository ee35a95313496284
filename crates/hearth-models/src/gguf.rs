//! Opens a GGUF file and builds the architecture it names.

use crate::gguf_meta::get_str;
use crate::{CausalLm, ModelError, ModelSpec};
use candle_core::quantized::gguf_file::Value;
use candle_core::Device;
use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;

/// A model ready to run, plus the file's metadata (tokenizer, chat template) for
/// hearth-text.
pub struct LoadedGguf {
    pub model: Box<dyn CausalLm>,
    pub metadata: HashMap<String, Value>,
    pub spec: ModelSpec,
}

/// How to load a GGUF file.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the weights live. The paged attention kernel is CPU-only for now.
    pub device: Device,
    /// Dequantize every matrix to f32 at load. Default false (weights stay quantized
    /// and quantized matmuls quantize activations to 8 bits); true trades memory for
    /// transformers-exact numerics, and on CPU is faster for types candle has no SIMD
    /// dot product for (Q4_1).
    pub dequantize: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dequantize: false,
        }
    }
}

/// Loads `path` on the CPU, weights kept quantized.
pub fn load_gguf(path: &Path) -> Result<LoadedGguf, ModelError> {
    load_gguf_with(path, &LoadOptions::default())
}

pub fn load_gguf_with(path: &Path, opts: &LoadOptions) -> Result<LoadedGguf, ModelError> {
    let io = |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    load_gguf_from(&mut file, &path.display().to_string(), opts)
}

/// Loads a GGUF model from any reader (`name` is for messages): the file path above,
/// and the fuzz target on bytes in memory.
pub fn load_gguf_from<R: Read + Seek>(
    file: &mut R,
    name: &str,
    opts: &LoadOptions,
) -> Result<LoadedGguf, ModelError> {
    let device = &opts.device;
    if !device.is_cpu() {
        return Err(ModelError::Unsupported(
            "only the CPU backend has a paged attention kernel yet".into(),
        ));
    }
    let content = crate::gguf_read::read_content(file, name)?;
    let arch = get_str(&content.metadata, "general.architecture")?
        .ok_or_else(|| ModelError::Invalid("GGUF metadata has no general.architecture".into()))?;
    let model: Box<dyn CausalLm> = match arch {
        "llama" | "qwen2" | "qwen3" => {
            Box::new(crate::llama::load(&content, file, device, opts.dequantize)?)
        }
        "gemma3" => Box::new(crate::gemma3::load_gguf(
            &content,
            file,
            device,
            opts.dequantize,
        )?),
        other => {
            return Err(ModelError::Unsupported(format!(
                "GGUF architecture `{other}`"
            )))
        }
    };
    let spec = model.spec().clone();
    Ok(LoadedGguf {
        model,
        metadata: content.metadata,
        spec,
    })
}
