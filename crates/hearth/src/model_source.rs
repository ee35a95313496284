//! Where a served model comes from: a GGUF file (weights, tokenizer and template in
//! one file) or a Hugging Face folder (safetensors + tokenizer.json + configs).

use std::path::Path;

use anyhow::{Context, Result};
use hearth_models::quantize::GgmlDType;
use hearth_models::CausalLm;
use hearth_server::state::GenerationDefaults;
use hearth_text::{ChatTemplate, Tokenizer};
use serde_json::Value;

/// Everything `serve` needs from a model source.
pub struct LoadedSource {
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub defaults: GenerationDefaults,
}

/// The name a path is served under: a folder's name (`.` and `..` resolved), a
/// file's stem.
pub fn default_name(path: &Path) -> Option<String> {
    if path.is_dir() {
        let full = path.canonicalize().ok()?;
        return full.file_name().map(|s| s.to_string_lossy().into_owned());
    }
    path.file_stem().map(|s| s.to_string_lossy().into_owned())
}

/// Where `serve` runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

/// What the weights are held in on the GPU (`--dtype`, as vLLM's). `auto`: a GGUF
/// file's quantized matrices stay in their blocks where the GPU has kernels for the
/// type (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K), everything else is bf16; `bfloat16` and
/// `float32` hold every matrix in that type (dequantized on load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DtypeArg {
    #[default]
    Auto,
    #[value(alias = "bf16")]
    Bfloat16,
    #[value(alias = "float", alias = "f32")]
    Float32,
}

/// `--dtype` applies to the GPU; the CPU computes in f32 over the file's own types.
pub fn check_dtype(device: DeviceArg, dtype: DtypeArg) -> Result<()> {
    anyhow::ensure!(
        device == DeviceArg::Cuda || dtype == DtypeArg::Auto,
        "--dtype applies to --device cuda; on the CPU weights keep the file's types \
         (use --quantization to change them for a Hugging Face folder)"
    );
    Ok(())
}

/// The KV cache budget on the GPU (`None` where `--kv-cache-memory` or the CPU decides
/// it): `--gpu-memory-utilization` (default 0.9, as vLLM) of the GPU's memory, less what
/// is in use once the weights are loaded. Call after loading.
pub fn gpu_kv_budget(
    device: DeviceArg,
    utilization: Option<f64>,
    kv_cache_memory: Option<u64>,
) -> Result<Option<u64>> {
    check_kv_flags(device, utilization, kv_cache_memory)?;
    if device == DeviceArg::Cpu || kv_cache_memory.is_some() {
        return Ok(None);
    }
    let (free, total) = gpu_memory()?;
    let kv = hearth_models::sizing::gpu_kv_budget(total, free, utilization.unwrap_or(0.9))?;
    Ok(Some(kv))
}

/// A K/V dtype the device cannot hold, refused before anything is loaded: int8 is the
/// CPU's alone.
pub fn check_kv_dtype(device: DeviceArg, dtype: Option<hearth_models::KvDtype>) -> Result<()> {
    match (device, dtype) {
        (DeviceArg::Cuda, Some(hearth_models::KvDtype::Int8)) => anyhow::bail!(
            "--kv-cache-dtype int8 runs on the CPU only; with --device cuda use f16 or f32"
        ),
        _ => Ok(()),
    }
}

/// The KV-sizing flags that cannot go together, refused before anything is loaded.
pub fn check_kv_flags(
    device: DeviceArg,
    utilization: Option<f64>,
    kv_cache_memory: Option<u64>,
) -> Result<()> {
    if let Some(u) = utilization {
        hearth_models::sizing::check_gpu_utilization(u)?;
    }
    match (device, utilization, kv_cache_memory) {
        (DeviceArg::Cpu, Some(_), _) => anyhow::bail!(
            "--gpu-memory-utilization applies to --device cuda; on the CPU the KV cache is \
             sized with --kv-cache-memory"
        ),
        (DeviceArg::Cuda, Some(_), Some(_)) => {
            anyhow::bail!("give --gpu-memory-utilization or --kv-cache-memory, not both")
        }
        _ => Ok(()),
    }
}

#[cfg(feature = "cuda")]
fn gpu_memory() -> Result<(u64, u64)> {
    Ok(hearth_models::cuda::memory_info(0)?)
}

#[cfg(not(feature = "cuda"))]
fn gpu_memory() -> Result<(u64, u64)> {
    anyhow::bail!("this hearth was built without CUDA")
}

/// `load_with` on the chosen device.
pub fn load_on(
    path: &Path,
    quantization: Option<GgmlDType>,
    device: DeviceArg,
    dtype: DtypeArg,
) -> Result<LoadedSource> {
    check_dtype(device, dtype)?;
    match device {
        DeviceArg::Cpu => load_with(path, quantization),
        DeviceArg::Cuda => load_cuda(path, quantization, dtype),
    }
}

#[cfg(feature = "cuda")]
fn load_cuda(
    path: &Path,
    quantization: Option<GgmlDType>,
    dtype: DtypeArg,
) -> Result<LoadedSource> {
    use hearth_models::cuda::llama::GpuDtype;
    anyhow::ensure!(
        quantization.is_none(),
        "--quantization applies to the CPU; on the GPU weights are held as --dtype"
    );
    let keep_quantized = dtype == DtypeArg::Auto;
    let dtype = match dtype {
        DtypeArg::Auto | DtypeArg::Bfloat16 => GpuDtype::Bf16,
        DtypeArg::Float32 => GpuDtype::F32,
    };
    if !path.is_dir() {
        let loaded = hearth_models::cuda::load_gguf(path, 0, dtype, keep_quantized)
            .with_context(|| format!("loading {} onto the GPU", path.display()))?;
        return from_gguf(loaded);
    }
    let model = hearth_models::cuda::load_safetensors_dir(path, 0, dtype)
        .with_context(|| format!("loading {} onto the GPU", path.display()))?;
    hf_dir_source(path, Box::new(model))
}

#[cfg(not(feature = "cuda"))]
fn load_cuda(_: &Path, _: Option<GgmlDType>, _: DtypeArg) -> Result<LoadedSource> {
    anyhow::bail!(
        "this hearth was built without CUDA: build it with \
         `cargo build --release -p hearth --features cuda` (see the README's CUDA section)"
    )
}

/// Loads a GGUF file, or a Hugging Face folder when `path` is a directory (its
/// matrices quantized to `quantization` as they are read).
pub fn load_with(path: &Path, quantization: Option<GgmlDType>) -> Result<LoadedSource> {
    if path.is_dir() {
        load_hf_dir(path, quantization)
    } else {
        anyhow::ensure!(
            quantization.is_none(),
            "--quantization applies to Hugging Face folders; a GGUF file keeps its own types"
        );
        load_gguf(path)
    }
}

fn load_gguf(path: &Path) -> Result<LoadedSource> {
    let loaded =
        hearth_models::load_gguf(path).with_context(|| format!("loading {}", path.display()))?;
    from_gguf(loaded)
}

/// The tokenizer and template from a loaded GGUF's metadata, with its model.
fn from_gguf(loaded: hearth_models::LoadedGguf) -> Result<LoadedSource> {
    let tokenizer = Tokenizer::from_gguf_metadata(&loaded.metadata).context("tokenizer")?;
    let template =
        ChatTemplate::from_gguf_metadata(&loaded.metadata, &tokenizer).context("chat template")?;
    Ok(LoadedSource {
        model: loaded.model,
        tokenizer,
        template,
        defaults: GenerationDefaults::default(),
    })
}

fn load_hf_dir(dir: &Path, quantization: Option<GgmlDType>) -> Result<LoadedSource> {
    let loaded = hearth_models::load_safetensors_dir_with(dir, quantization)
        .with_context(|| format!("loading {}", dir.display()))?;
    hf_dir_source(dir, loaded.model)
}

/// A Hugging Face folder's tokenizer, template and sampling defaults, with its model.
fn hf_dir_source(dir: &Path, model: Box<dyn CausalLm>) -> Result<LoadedSource> {
    let tokenizer =
        Tokenizer::from_hf_dir(dir).with_context(|| format!("tokenizer of {}", dir.display()))?;
    let template = ChatTemplate::from_hf_dir(dir, &tokenizer)
        .with_context(|| format!("chat template of {}", dir.display()))?;
    let defaults = generation_defaults(dir)?;
    Ok(LoadedSource {
        model,
        tokenizer,
        template,
        defaults,
    })
}

/// temperature/top_p/top_k of generation_config.json (taken as written, as vLLM's
/// `--generation-config auto` does); absent file or keys leave the API defaults.
pub fn generation_defaults(dir: &Path) -> Result<GenerationDefaults> {
    let path = dir.join("generation_config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(GenerationDefaults::default())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let f = |k: &str| v.get(k).and_then(Value::as_f64).map(|x| x as f32);
    let d = GenerationDefaults {
        temperature: f("temperature"),
        top_p: f("top_p"),
        top_k: v.get("top_k").and_then(Value::as_i64),
        min_p: f("min_p"),
        repetition_penalty: f("repetition_penalty"),
    };
    // The API's own bounds, checked once here so no request fails for the model's values.
    let ok = |x: Option<f32>, good: fn(f32) -> bool| x.is_none_or(good);
    anyhow::ensure!(
        ok(d.temperature, |t| t >= 0.0)
            && ok(d.top_p, |p| p > 0.0 && p <= 1.0)
            && d.top_k.is_none_or(|k| k >= -1)
            && ok(d.min_p, |m| (0.0..=1.0).contains(&m))
            && ok(d.repetition_penalty, |r| r > 0.0),
        "{}: sampling defaults out of range: {d:?}",
        path.display()
    );
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_flags_that_cannot_go_together_are_refused() {
        let e = check_kv_flags(DeviceArg::Cpu, Some(0.8), None).unwrap_err();
        assert!(e.to_string().contains("applies to --device cuda"), "{e}");
        let e = check_kv_flags(DeviceArg::Cuda, Some(0.8), Some(1 << 30)).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = check_kv_flags(DeviceArg::Cuda, Some(1.5), None).unwrap_err();
        assert!(e.to_string().contains("must be in (0, 1]"), "{e}");
        assert!(check_kv_flags(DeviceArg::Cuda, Some(0.5), None).is_ok());
        assert!(check_kv_flags(DeviceArg::Cpu, None, Some(1 << 30)).is_ok());
    }

    /// Only the GPU with no explicit cache size asks the GPU.
    #[test]
    fn the_cpu_and_an_explicit_cache_size_keep_the_configured_budget() {
        assert_eq!(gpu_kv_budget(DeviceArg::Cpu, None, None).ok(), Some(None));
        assert_eq!(
            gpu_kv_budget(DeviceArg::Cuda, None, Some(1 << 30)).ok(),
            Some(None)
        );
        #[cfg(not(feature = "cuda"))]
        assert!(gpu_kv_budget(DeviceArg::Cuda, None, None).is_err());
    }

    #[test]
    fn defaults_from_generation_config() {
        let dir = std::env::temp_dir().join(format!("hearth-gencfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(
            generation_defaults(&dir).expect("no file is fine"),
            GenerationDefaults::default()
        );
        std::fs::write(
            dir.join("generation_config.json"),
            r#"{"temperature": 0.6, "top_p": 0.95, "top_k": 20, "eos_token_id": [1, 2]}"#,
        )
        .expect("write");
        let d = generation_defaults(&dir).expect("parses");
        assert_eq!(
            (
                d.temperature,
                d.top_p,
                d.top_k,
                d.min_p,
                d.repetition_penalty
            ),
            (Some(0.6), Some(0.95), Some(20), None, None)
        );
        std::fs::write(dir.join("generation_config.json"), r#"{"top_p": 1.5}"#).expect("write");
        assert!(generation_defaults(&dir).is_err(), "top_p 1.5 is refused");
        assert_eq!(
            default_name(&dir).as_deref(),
            dir.file_name().and_then(|n| n.to_str())
        );
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        assert_eq!(
            default_name(&dir.join("sub").join("..")).as_deref(),
            dir.file_name().and_then(|n| n.to_str()),
            "`..` resolves to the folder's own name"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
