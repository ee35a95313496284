//! The CUDA backend (feature `cuda`). Kernels are CUDA C++ compiled at run time by
//! NVRTC for the GPU found, and the CUDA libraries are loaded at run time too
//! (cudarc's dynamic loading): building hearth with `--features cuda` needs no CUDA
//! toolkit, only running it needs a driver and libnvrtc.

mod fused_step;
mod kernel_arg;
mod launch;
pub mod llama;
pub mod paged_attention;
pub mod pick;
pub mod product;
pub mod quant_type;
mod step_graph;
mod weights;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, LaunchConfig};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use crate::ModelError;
pub(crate) use kernel_arg::KernelArg;
use launch::Kernels;

/// CUDA C++ sources of hearth's own kernels, compiled as one unit (common first).
const KERNELS: [&str; 8] = [
    include_str!("kernels/common.cuh"),
    include_str!("kernels/paged_attention.cu"),
    include_str!("kernels/paged_attention_split.cu"),
    include_str!("kernels/llama_ops.cu"),
    include_str!("kernels/gemv.cu"),
    include_str!("kernels/gemv_fused.cu"),
    include_str!("kernels/argmax.cu"),
    include_str!("kernels/top_rows.cu"),
];

/// The quantized products (`kernels/gemv_quant.cu`, and the tensor-core ones of
/// `kernels/mmq.cu`), compiled apart from `KERNELS` and only for the types a model
/// holds: each type adds seconds of NVRTC time.
const QUANT_KERNELS: [&str; 3] = [
    include_str!("kernels/common.cuh"),
    include_str!("kernels/gemv_quant.cu"),
    include_str!("kernels/mmq.cu"),
];

/// `KERNELS` as one unit, after the build switches of `HEARTH_CUDA_DEFINE`, for
/// measuring kernel variants (`define_lines`).
fn kernel_source() -> String {
    let spec = std::env::var("HEARTH_CUDA_DEFINE").unwrap_or_default();
    let (lines, ignored) = define_lines(&spec);
    if !ignored.is_empty() {
        tracing::warn!(
            ?ignored,
            "HEARTH_CUDA_DEFINE: entries not of the form NAME=N ignored"
        );
    }
    lines + &KERNELS.concat()
}

/// `#define` lines of `NAME=N,NAME=N` (a name of capitals, digits and `_` not starting
/// with a digit; a whole number), and the entries that are not of that form.
fn define_lines(spec: &str) -> (String, Vec<&str>) {
    let (mut lines, mut ignored) = (String::new(), Vec::new());
    for entry in spec.split(',').filter(|e| !e.is_empty()) {
        let parsed = entry.split_once('=').and_then(|(name, value)| {
            let name_ok = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            name_ok.then_some(name).zip(value.parse::<u32>().ok())
        });
        match parsed {
            Some((name, v)) => lines.push_str(&format!("#define {name} {v}\n")),
            None => ignored.push(entry),
        }
    }
    (lines, ignored)
}

/// CUDA C++ source to PTX for `arch` (e.g. `sm_90`).
fn compile(source: String, arch: &'static str) -> Result<String, ModelError> {
    let opts = CompileOptions {
        arch: Some(arch),
        use_fast_math: Some(false),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(source, opts)
        .map_err(|e| ModelError::Unsupported(format!("NVRTC: {e}")))?;
    Ok(ptx.to_src())
}

/// One GPU: its context, a stream, and hearth's kernels compiled for it.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    kernels: Kernels,
    arch: &'static str,
    /// Quantized types whose kernels are loaded.
    quant_loaded: std::sync::Mutex<Vec<quant_type::QuantType>>,
    /// Compute capability, e.g. (9, 0) for Hopper.
    pub capability: (i32, i32),
    /// Streaming multiprocessors: how many blocks fill the GPU.
    pub multiprocessors: usize,
    /// Shared memory a block may be allowed (above the default 48 KiB).
    pub shared_optin: usize,
    /// Bits of the activations the quantized products multiply (16, or 8 with
    /// `HEARTH_CUDA_QACT=8`: `kernels/gemv_quant.cu`).
    pub qact_bits: usize,
    /// Rows a warp of the quantized products sums at once for steps of several tokens
    /// (2, or 1 with `HEARTH_CUDA_QROWS=1`: `kernels/gemv_quant.cu`).
    pub qrows: usize,
    /// The split attention kernel's ticket counters: an int per (row, KV head) it
    /// splits (at most 2 * multiprocessors), zero between launches.
    attn_tickets: cudarc::driver::CudaSlice<i32>,
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
        let multiprocessors = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(cuda_err("device"))? as usize;
        let shared_optin = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(cuda_err("device"))? as usize;
        // Safety: hearth runs all its GPU work on this one stream, in order: events per
        // buffer (what cudarc records to order several streams) would order nothing.
        unsafe { ctx.disable_event_tracking() };
        let arch: &'static str =
            Box::leak(format!("sm_{}{}", capability.0, capability.1).into_boxed_str());
        let kernels = Kernels::load(&ctx, &compile(kernel_source(), arch)?, capability)?;
        // A stream of its own: the legacy default stream cannot be captured into a graph.
        let stream = ctx.new_stream().map_err(cuda_err("stream"))?;
        let attn_tickets = stream
            .alloc_zeros::<i32>(2 * multiprocessors.max(1))
            .map_err(cuda_err("alloc"))?;
        Ok(Gpu {
            ctx,
            stream,
            kernels,
            arch,
            quant_loaded: Default::default(),
            capability,
            multiprocessors,
            shared_optin,
            qact_bits: if std::env::var("HEARTH_CUDA_QACT").as_deref() == Ok("8") {
                8
            } else {
                16
            },
            qrows: if std::env::var("HEARTH_CUDA_QROWS").as_deref() == Ok("1") {
                1
            } else {
                2
            },
            attn_tickets,
        })
    }

    /// The device address of the split attention kernel's ticket counters, and how
    /// many there are.
    pub(crate) fn attn_tickets(&self) -> (u64, usize) {
        use cudarc::driver::DevicePtr;
        let ptr = self.attn_tickets.device_ptr(&self.stream).0;
        (ptr, self.attn_tickets.len())
    }

    /// Compiles and loads the quantized-product kernels of `types` not loaded yet.
    pub fn load_quant_kernels(&self, types: &[quant_type::QuantType]) -> Result<(), ModelError> {
        let mut loaded = self
            .quant_loaded
            .lock()
            .map_err(|_| ModelError::Unsupported("CUDA kernel list poisoned".into()))?;
        let mut source = format!(
            "#define QACT_BITS {}\n#define QROWS {}\n",
            self.qact_bits, self.qrows
        );
        source.push_str(&QUANT_KERNELS.concat());
        let mut new = Vec::new();
        for &t in types {
            if !loaded.contains(&t) && !new.contains(&t) {
                source.push_str(t.kernels().instantiation);
                new.push(t);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        self.kernels.add(&compile(source, self.arch)?)?;
        loaded.extend(new);
        Ok(())
    }

    /// Launches kernel `name` on the GPU's stream with `args` in order (with PDL where
    /// the GPU has it: see `launch.rs`).
    ///
    /// # Safety
    /// `args` must be the kernel's parameters in type and order, and every buffer they
    /// point at as large as the kernel reads and writes with `cfg`.
    pub(crate) unsafe fn launch(
        &self,
        name: &str,
        cfg: LaunchConfig,
        args: &[&dyn KernelArg],
    ) -> Result<(), ModelError> {
        // Safety: the caller's contract.
        unsafe { self.kernels.launch(&self.stream, name, cfg, args) }
    }

    /// Turns programmatic dependent launch on (where the GPU has it) or off; for
    /// measuring one against the other. Drop captured graphs after changing it.
    pub fn set_pdl(&self, on: bool) {
        self.kernels.set_pdl(on, self.capability);
    }
}

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

/// A GGUF llama (llama, qwen2, qwen3) loaded onto GPU `ordinal`: read on the CPU,
/// then moved to the device. With `keep_quantized`, matrices of a type the GPU
/// multiplies as stored (`QuantType`) stay in their blocks and the rest are held as
/// `dtype`; without, every matrix is dequantized to `dtype`.
pub fn load_gguf(
    path: &std::path::Path,
    ordinal: usize,
    dtype: llama::GpuDtype,
    keep_quantized: bool,
) -> Result<crate::LoadedGguf, ModelError> {
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
    let form = if keep_quantized {
        crate::quant::MatrixForm::Stored
    } else {
        crate::quant::MatrixForm::Dense
    };
    let cpu = crate::llama::load_as(&content, &mut file, &candle_core::Device::Cpu, form)?;
    let model = llama::CudaLlama::from_cpu(&cpu, ordinal, dtype)?;
    let spec = cpu.spec.clone();
    Ok(crate::LoadedGguf {
        model: Box::new(model),
        metadata: content.metadata,
        spec,
    })
}

/// A llama-family Hugging Face folder loaded onto GPU `ordinal` as `dtype`.
pub fn load_safetensors_dir(
    dir: &std::path::Path,
    ordinal: usize,
    dtype: llama::GpuDtype,
) -> Result<llama::CudaLlama, ModelError> {
    let cpu = crate::hf_load::load_llama_dir(dir)?;
    llama::CudaLlama::from_cpu(&cpu, ordinal, dtype)
}

#[cfg(test)]
mod tests {
    use super::define_lines;

    #[test]
    fn define_lines_takes_names_and_numbers_only() {
        let (lines, ignored) = define_lines("CHUNK=12,SPLIT_KEYS=2,,x=1,A B=2,N=-1,Q4=3,4Q=1,M");
        assert_eq!(
            lines,
            "#define CHUNK 12\n#define SPLIT_KEYS 2\n#define Q4 3\n"
        );
        assert_eq!(ignored, ["x=1", "A B=2", "N=-1", "4Q=1", "M"]);
        assert_eq!(define_lines(""), (String::new(), Vec::new()));
    }
}
