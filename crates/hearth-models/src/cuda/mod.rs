//! The CUDA backend (feature `cuda`). Kernels are CUDA C++ compiled at run time by
//! NVRTC for the GPU found, and the CUDA libraries are loaded at run time too
//! (cudarc's dynamic loading): building hearth with `--features cuda` needs no CUDA
//! toolkit, only running it needs a driver and libnvrtc.

pub mod llama;
pub mod paged_attention;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use crate::ModelError;

/// CUDA C++ sources of hearth's own kernels.
const KERNELS: [&str; 2] = [
    include_str!("kernels/paged_attention.cu"),
    include_str!("kernels/llama_ops.cu"),
];

/// One GPU: its context, a stream, and hearth's kernels compiled for it.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    /// Compute capability, e.g. (9, 0) for Hopper.
    pub capability: (i32, i32),
}

pub(crate) fn cuda_err(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> ModelError + '_ {
    move |e| ModelError::Unsupported(format!("CUDA {what}: {e}"))
}

impl Gpu {
    /// Opens GPU `ordinal` and compiles the kernels for its architecture.
    pub fn new(ordinal: usize) -> Result<Gpu, ModelError> {
        // cudarc panics when the driver library cannot be loaded: make that an error.
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| {
                ModelError::Unsupported(
                    "no CUDA driver found (libcuda.so.1; set LD_LIBRARY_PATH)".into(),
                )
            })?
            .map_err(cuda_err("context"))?;
        let capability = ctx.compute_capability().map_err(cuda_err("device"))?;
        let arch: &'static str =
            Box::leak(format!("sm_{}{}", capability.0, capability.1).into_boxed_str());
        let opts = CompileOptions {
            arch: Some(arch),
            use_fast_math: Some(false),
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(KERNELS.concat(), opts)
            .map_err(|e| ModelError::Unsupported(format!("NVRTC: {e}")))?;
        let module = ctx.load_module(ptx).map_err(cuda_err("module"))?;
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            module,
            capability,
        })
    }

    pub(crate) fn function(&self, name: &str) -> Result<CudaFunction, ModelError> {
        self.module.load_function(name).map_err(cuda_err("kernel"))
    }
}

/// A GGUF llama (llama, qwen2 and qwen3 without biases or q/k norms for now) loaded
/// onto GPU `ordinal`: read on the CPU, dequantized, then moved to the device.
/// Free and total bytes of GPU `ordinal`'s memory, as the driver reports them now (the
/// device's primary context: the one the model's weights went to).
pub fn memory_info(ordinal: usize) -> Result<(u64, u64), ModelError> {
    let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
        .map_err(|_| ModelError::Unsupported("no CUDA driver found (libcuda.so.1)".into()))?
        .map_err(cuda_err("context"))?;
    ctx.bind_to_thread().map_err(cuda_err("context"))?;
    let (free, total) = cudarc::driver::result::mem_get_info().map_err(cuda_err("memory info"))?;
    Ok((free as u64, total as u64))
}

pub fn load_gguf(path: &std::path::Path, ordinal: usize) -> Result<crate::LoadedGguf, ModelError> {
    let name = path.display().to_string();
    let io = |source| ModelError::Io {
        path: name.clone(),
        source,
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let content = crate::gguf_read::read_content(&mut file, &name)?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    if !matches!(arch.as_str(), "llama" | "qwen2" | "qwen3") {
        return Err(ModelError::Unsupported(format!(
            "the CUDA backend runs llama-family GGUF models for now, not `{arch}`"
        )));
    }
    let cpu = crate::llama::load(&content, &mut file, &candle_core::Device::Cpu, true)?;
    let model = llama::CudaLlama::from_cpu(&cpu, ordinal)?;
    let spec = cpu.spec.clone();
    Ok(crate::LoadedGguf {
        model: Box::new(model),
        metadata: content.metadata,
        spec,
    })
}
