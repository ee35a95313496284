//! Kernel arguments of mixed types for one launch call.

use std::ffi::c_void;

use cudarc::driver::DeviceRepr;

/// A kernel argument of any type `launch` takes: any plain value the driver passes by
/// value (device pointers travel as `u64`).
pub(crate) trait KernelArg {
    /// Where the value lies, as the driver's parameter array wants it.
    fn param(&self) -> *mut c_void;
}

impl<T: DeviceRepr> KernelArg for T {
    fn param(&self) -> *mut c_void {
        self as *const T as *mut c_void
    }
}
