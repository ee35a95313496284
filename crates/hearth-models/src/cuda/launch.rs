//! Launching hearth's kernels by name. On Hopper and later every launch carries
//! programmatic dependent launch (PDL): a kernel may be scheduled while the one before
//! it drains, and each kernel waits (`grid_wait` in common.cuh) before it touches
//! anything the earlier one writes. A decode step is ~280 short dependent kernels, so
//! the gaps between them are a large part of it; a product can also start streaming
//! its weights (which nothing writes) before the wait.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::{
    CUfunction, CUlaunchAttribute, CUlaunchAttributeID, CUlaunchAttributeValue, CUlaunchConfig,
    CUmodule,
};
use cudarc::driver::{CudaContext, CudaStream, LaunchConfig};

use super::cuda_err;
use super::kernel_arg::KernelArg;
use crate::ModelError;

/// Most arguments any hearth kernel takes.
const MAX_ARGS: usize = 24;
/// Dynamic shared memory any kernel may use without asking.
const DEFAULT_SHARED: u32 = 48 << 10;

/// A kernel handle, and the dynamic shared memory it has been allowed beyond the
/// default 48 KiB; CUDA functions may be launched from any thread.
#[derive(Clone, Copy)]
struct Function(CUfunction, u32);
// Safety: a CUfunction is a driver handle, valid from any thread while its module is
// loaded (the module lives as long as `Kernels`).
unsafe impl Send for Function {}

/// hearth's kernels, compiled for one GPU and loaded into its context: the base module,
/// and modules added later (the quantized products of the types a model holds).
pub(crate) struct Kernels {
    ctx: Arc<CudaContext>,
    modules: Mutex<Vec<CUmodule>>,
    functions: Mutex<HashMap<String, Function>>,
    /// Launch with PDL (compute capability 9.0 and later; off with `HEARTH_CUDA_PDL=0`).
    pdl: AtomicBool,
}

// Safety: the module handles are only used under the context (bound before each use),
// and they and the function table are behind mutexes.
unsafe impl Send for Kernels {}
unsafe impl Sync for Kernels {}

impl Kernels {
    /// Loads `ptx` (NVRTC's output) into `ctx`.
    pub(crate) fn load(
        ctx: &Arc<CudaContext>,
        ptx: &str,
        capability: (i32, i32),
    ) -> Result<Kernels, ModelError> {
        let pdl = capability.0 >= 9 && std::env::var("HEARTH_CUDA_PDL").as_deref() != Ok("0");
        let kernels = Kernels {
            ctx: ctx.clone(),
            modules: Default::default(),
            functions: Default::default(),
            pdl: AtomicBool::new(pdl),
        };
        kernels.add(ptx)?;
        Ok(kernels)
    }

    /// Loads one more module; its kernels are found by name like the first's.
    pub(crate) fn add(&self, ptx: &str) -> Result<(), ModelError> {
        let image =
            CString::new(ptx).map_err(|_| ModelError::Unsupported("PTX with a NUL byte".into()))?;
        self.ctx.bind_to_thread().map_err(cuda_err("context"))?;
        // Safety: a NUL-terminated PTX image, the context current on this thread.
        let module = unsafe { cudarc::driver::result::module::load_data(image.as_ptr().cast()) }
            .map_err(cuda_err("module"))?;
        self.modules
            .lock()
            .map_err(|_| ModelError::Unsupported("CUDA module list poisoned".into()))?
            .push(module);
        Ok(())
    }

    /// Whether launches carry PDL.
    pub(crate) fn pdl(&self) -> bool {
        self.pdl.load(Ordering::Relaxed)
    }

    /// Turns PDL on (where the GPU has it) or off, for measuring one against the other.
    pub(crate) fn set_pdl(&self, on: bool, capability: (i32, i32)) {
        self.pdl.store(on && capability.0 >= 9, Ordering::Relaxed);
    }

    fn function(&self, name: &str) -> Result<Function, ModelError> {
        let mut known = self
            .functions
            .lock()
            .map_err(|_| ModelError::Unsupported("CUDA kernel table poisoned".into()))?;
        if let Some(f) = known.get(name) {
            return Ok(*f);
        }
        let cname = CString::new(name)
            .map_err(|_| ModelError::Unsupported(format!("kernel name {name:?}")))?;
        let modules = self
            .modules
            .lock()
            .map_err(|_| ModelError::Unsupported("CUDA module list poisoned".into()))?;
        for &m in modules.iter() {
            // Safety: the module is loaded in this context.
            if let Ok(f) = unsafe { cudarc::driver::result::module::get_function(m, cname.clone()) }
            {
                known.insert(name.to_string(), Function(f, 0));
                return Ok(Function(f, 0));
            }
        }
        Err(ModelError::Unsupported(format!(
            "CUDA kernel `{name}` is not loaded"
        )))
    }

    /// Lets `f` launch with `bytes` of dynamic shared memory (above 48 KiB a kernel must
    /// be allowed it first).
    fn allow_shared(&self, name: &str, f: Function, bytes: u32) -> Result<(), ModelError> {
        self.ctx.bind_to_thread().map_err(cuda_err("context"))?;
        // Safety: a function of a loaded module; the driver checks the size.
        unsafe {
            cudarc::driver::result::function::set_function_attribute(
                f.0,
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
        }
        .map_err(cuda_err("shared memory size"))?;
        self.functions
            .lock()
            .map_err(|_| ModelError::Unsupported("CUDA kernel table poisoned".into()))?
            .insert(name.to_string(), Function(f.0, bytes));
        Ok(())
    }

    /// Launches kernel `name` on `stream` with `args` in order.
    ///
    /// # Safety
    /// `args` must be the kernel's parameters in type and order, and every buffer they
    /// point at must be as large as the kernel reads and writes with `cfg`.
    pub(crate) unsafe fn launch(
        &self,
        stream: &CudaStream,
        name: &str,
        cfg: LaunchConfig,
        args: &[&dyn KernelArg],
    ) -> Result<(), ModelError> {
        if args.len() > MAX_ARGS {
            return Err(ModelError::Unsupported(format!(
                "kernel {name}: {} arguments",
                args.len()
            )));
        }
        let f = self.function(name)?;
        if cfg.shared_mem_bytes > DEFAULT_SHARED && cfg.shared_mem_bytes > f.1 {
            self.allow_shared(name, f, cfg.shared_mem_bytes)?;
        }
        let mut params = [std::ptr::null_mut::<c_void>(); MAX_ARGS];
        for (p, a) in params.iter_mut().zip(args) {
            *p = a.param();
        }
        // Safety: a zeroed attribute value is a valid "off"; the field set is the one
        // this attribute id reads.
        let mut value: CUlaunchAttributeValue = unsafe { std::mem::zeroed() };
        value.programmaticStreamSerializationAllowed = 1;
        let mut attr = CUlaunchAttribute {
            id: CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
            pad: [0; 4],
            value,
        };
        let pdl = self.pdl();
        let config = CUlaunchConfig {
            gridDimX: cfg.grid_dim.0,
            gridDimY: cfg.grid_dim.1,
            gridDimZ: cfg.grid_dim.2,
            blockDimX: cfg.block_dim.0,
            blockDimY: cfg.block_dim.1,
            blockDimZ: cfg.block_dim.2,
            sharedMemBytes: cfg.shared_mem_bytes,
            hStream: stream.cu_stream(),
            attrs: if pdl { &mut attr } else { std::ptr::null_mut() },
            numAttrs: u32::from(pdl),
        };
        self.ctx.bind_to_thread().map_err(cuda_err("context"))?;
        // Safety: the caller's contract for the arguments; `params` points at values
        // that outlive the call (the driver copies them at launch).
        unsafe {
            cudarc::driver::sys::cuLaunchKernelEx(
                &config,
                f.0,
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
        .map_err(cuda_err("launch"))
    }
}

impl Drop for Kernels {
    fn drop(&mut self) {
        // Errors at teardown have nowhere to go; the context's own drop follows.
        if self.ctx.bind_to_thread().is_ok() {
            if let Ok(modules) = self.modules.lock() {
                for &m in modules.iter() {
                    // Safety: no launch can follow (the table is being dropped).
                    let _ = unsafe { cudarc::driver::result::module::unload(m) };
                }
            }
        }
    }
}
