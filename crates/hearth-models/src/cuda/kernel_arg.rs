//! Kernel arguments of mixed types for one launch call.

use cudarc::driver::{LaunchArgs, PushKernelArg};

/// A kernel argument of any type `launch` takes.
pub(super) trait KernelArg {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>);
}
impl KernelArg for u64 {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}
impl KernelArg for i32 {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}
impl KernelArg for i64 {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}
impl KernelArg for f32 {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}
