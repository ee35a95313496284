//! Which dot-product implementation runs, detected at run time.

use std::sync::OnceLock;

/// A dot-product implementation. Each one falls back to the next slower one where the
/// CPU lacks its features, so any value is safe to pass anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// As `Avx2`, with AVX512-VNNI + AVX512-VL: `vpdpbusd` on 256-bit vectors (and 32
    /// vector registers).
    Vnni,
    /// As `Vnni`, with AVX-512F/BW: calls of 4 or more activation rows on the
    /// repacked types (Q4_1, Q8_0, Q4_K, Q6_K) take two 8-row units a 512-bit vector
    /// (`pairs`); smaller calls run the `Vnni` kernels.
    Vnni512,
}

impl Kernel {
    /// The most capable kernel this CPU runs.
    pub fn detect() -> Kernel {
        Kernel::Vnni512.effective()
    }

    pub fn is_available(self) -> bool {
        // Detected once: this is asked for every weight row.
        static FEATURES: OnceLock<(bool, bool, bool)> = OnceLock::new();
        let &(avx2, vnni, wide) =
            FEATURES.get_or_init(|| (avx2_available(), vnni_available(), avx512_available()));
        match self {
            Kernel::Scalar => true,
            Kernel::Avx2 => avx2,
            Kernel::Vnni => avx2 && vnni,
            Kernel::Vnni512 => avx2 && vnni && wide,
        }
    }

    /// The kernel that actually runs when this one is asked for.
    pub fn effective(self) -> Kernel {
        match self {
            Kernel::Vnni512 if Kernel::Vnni512.is_available() => Kernel::Vnni512,
            Kernel::Vnni512 | Kernel::Vnni if Kernel::Vnni.is_available() => Kernel::Vnni,
            Kernel::Vnni512 | Kernel::Vnni | Kernel::Avx2 if Kernel::Avx2.is_available() => {
                Kernel::Avx2
            }
            _ => Kernel::Scalar,
        }
    }
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
