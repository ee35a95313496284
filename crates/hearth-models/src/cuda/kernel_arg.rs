//! Kernel arguments of mixed types for one launch call.

use cudarc::driver::{DeviceRepr, LaunchArgs, PushKernelArg};

/// A kernel argument of any type `launch` takes: any plain value cudarc passes by
/// value (device pointers travel as `u64`).
pub(super) trait KernelArg {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>);
}

impl<T: DeviceRepr> KernelArg for T {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}
