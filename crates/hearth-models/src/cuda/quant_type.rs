//! GGUF block-quantized types the GPU multiplies without dequantizing them first
//! (`kernels/gemv_quant.cu`), and how their blocks are laid out on the device.

use candle_core::quantized::GgmlDType;

/// A block-quantized type with GPU kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantType {
    Q8_0,
    Q4_0,
    Q4_1,
    Q4K,
    Q6K,
}

/// Per type: weights a block, bytes a block in the file, and the range of those bytes
/// that are quants (the rest, in order, are scales: "meta").
struct Layout {
    block: usize,
    bytes: usize,
    quants: std::ops::Range<usize>,
}

impl QuantType {
    pub const ALL: [QuantType; 5] = [
        QuantType::Q8_0,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q4K,
        QuantType::Q6K,
    ];

    pub fn from_ggml(t: GgmlDType) -> Option<QuantType> {
        match t {
            GgmlDType::Q8_0 => Some(QuantType::Q8_0),
            GgmlDType::Q4_0 => Some(QuantType::Q4_0),
            GgmlDType::Q4_1 => Some(QuantType::Q4_1),
            GgmlDType::Q4K => Some(QuantType::Q4K),
            GgmlDType::Q6K => Some(QuantType::Q6K),
            _ => None,
        }
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            QuantType::Q8_0 => GgmlDType::Q8_0,
            QuantType::Q4_0 => GgmlDType::Q4_0,
            QuantType::Q4_1 => GgmlDType::Q4_1,
            QuantType::Q4K => GgmlDType::Q4K,
            QuantType::Q6K => GgmlDType::Q6K,
        }
    }

    fn layout(self) -> Layout {
        let (block, bytes, quants) = match self {
            // d | 32 int8
            QuantType::Q8_0 => (32, 34, 2..34),
            // d | 16 bytes of nibbles
            QuantType::Q4_0 => (32, 18, 2..18),
            // d, m | 16 bytes of nibbles
            QuantType::Q4_1 => (32, 20, 4..20),
            // d, dmin, 12 scale bytes | 128 bytes of nibbles
            QuantType::Q4K => (256, 144, 16..144),
            // 128 bytes ql, 64 qh | 16 scales, d
            QuantType::Q6K => (256, 210, 0..192),
        };
        Layout {
            block,
            bytes,
            quants,
        }
    }

    /// Weights a block: a row's width must be a multiple of it.
    pub fn block(self) -> usize {
        self.layout().block
    }

    /// Bytes of `rows` rows of `cols` weights in the file.
    pub fn bytes(self, rows: usize, cols: usize) -> usize {
        let l = self.layout();
        rows * (cols / l.block) * l.bytes
    }

    /// Where the scales start in the device layout of `rows` rows: after every block's
    /// quants.
    pub(super) fn meta_offset(self, rows: usize, cols: usize) -> usize {
        let l = self.layout();
        rows * (cols / l.block) * l.quants.len()
    }

    /// The file's blocks (`bytes` of them, whole blocks) in the device layout: every
    /// block's quants, then every block's scales, same order, no byte added. Quant loads
    /// are then aligned (file blocks of 18, 20, 34 or 210 bytes are not).
    pub(super) fn to_device_layout(self, file: &[u8]) -> Vec<u8> {
        let l = self.layout();
        let mut out = Vec::with_capacity(file.len());
        for b in file.chunks_exact(l.bytes) {
            out.extend_from_slice(&b[l.quants.clone()]);
        }
        for b in file.chunks_exact(l.bytes) {
            out.extend_from_slice(&b[..l.quants.start]);
            out.extend_from_slice(&b[l.quants.end..]);
        }
        out
    }
}

/// Steps of up to this many tokens multiply quantized weights directly; larger ones
/// dequantize tiles of rows and hand them to cuBLAS.
pub const QGEMV_MAX_TOKENS: usize = 8;

/// A type's kernels: the lines of `kernels/gemv_quant.cu` and `kernels/mmq.cu` that
/// define them (for NVRTC), and their names: single-token product, product of up to
/// `QGEMV_MAX_TOKENS`, the same two with the SiLU·up epilogue, row dequantization, and
/// where the type has them, the tensor-core product and its SiLU·up form.
pub(super) struct QuantKernels {
    pub instantiation: &'static str,
    pub t1: &'static str,
    pub t8: &'static str,
    pub silu_t1: &'static str,
    pub silu_t8: &'static str,
    pub dequant: &'static str,
    pub mmq: Option<MmqKernels>,
}

/// The tensor-core products of a type (`kernels/mmq.cu`), plain and SiLU·up, by how
/// many 8-token tiles a block takes (`[1, 2]`).
pub(super) struct MmqKernels {
    pub plain: [&'static str; 2],
    pub silu: [&'static str; 2],
}

macro_rules! names {
    ($s:literal, $ty:literal) => {
        QuantKernels {
            instantiation: concat!("QUANT_TYPE(", $s, ", ", $ty, ")\n"),
            t1: concat!("qgemv_", $s, "_t1"),
            t8: concat!("qgemv_", $s, "_t8"),
            silu_t1: concat!("qgemv_silu_", $s, "_t1"),
            silu_t8: concat!("qgemv_silu_", $s, "_t8"),
            dequant: concat!("qdequant_", $s),
            mmq: None,
        }
    };
    ($s:literal, $ty:literal, $mmq:literal) => {
        QuantKernels {
            instantiation: concat!(
                "QUANT_TYPE(",
                $s,
                ", ",
                $ty,
                ")\nMMQ_TYPE(",
                $s,
                ", ",
                $mmq,
                ")\n"
            ),
            mmq: Some(MmqKernels {
                plain: [concat!("mmq_", $s, "_n1"), concat!("mmq_", $s, "_n2")],
                silu: [
                    concat!("mmq_silu_", $s, "_n1"),
                    concat!("mmq_silu_", $s, "_n2"),
                ],
            }),
            ..names!($s, $ty)
        }
    };
}

impl QuantType {
    pub(super) fn kernels(self) -> QuantKernels {
        match self {
            QuantType::Q8_0 => names!("q8_0", "QQ8_0"),
            QuantType::Q4_0 => names!("q4_0", "QQ4_0"),
            QuantType::Q4_1 => names!("q4_1", "QQ4_1", "MQ4_1"),
            QuantType::Q4K => names!("q4_k", "QQ4_K", "MQ4_K"),
            QuantType::Q6K => names!("q6_k", "QQ6_K"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_layout_splits_quants_from_scales_without_adding_bytes() {
        // Two Q4_1 blocks: d, m then 16 quant bytes each.
        let mut file = Vec::new();
        for b in 0..2u8 {
            file.extend_from_slice(&[b, b, 10 + b, 10 + b]);
            file.extend((0..16).map(|i| 100 + 16 * b + i));
        }
        let dev = QuantType::Q4_1.to_device_layout(&file);
        assert_eq!(dev.len(), file.len());
        assert_eq!(QuantType::Q4_1.meta_offset(1, 64), 32);
        assert_eq!(&dev[..16], &file[4..20]);
        assert_eq!(&dev[16..32], &file[24..40]);
        assert_eq!(&dev[32..36], &[0, 0, 10, 10]);
        assert_eq!(&dev[36..40], &[1, 1, 11, 11]);
        // Q6_K keeps ql/qh as quants and scales + d (the block's tail) as meta.
        let q6: Vec<u8> = (0..210).map(|i| i as u8).collect();
        let dev = QuantType::Q6K.to_device_layout(&q6);
        assert_eq!(&dev[..192], &q6[..192]);
        assert_eq!(&dev[192..], &q6[192..]);
        assert_eq!(QuantType::Q6K.bytes(2, 512), 4 * 210);
    }

    #[test]
    fn every_type_maps_to_ggml_and_back() {
        for t in QuantType::ALL {
            assert_eq!(QuantType::from_ggml(t.ggml()), Some(t));
            // The instantiation defines the entry points the names refer to.
            let k = t.kernels();
            let stem = &k.dequant["qdequant_".len()..];
            assert!(k.instantiation.starts_with(&format!("QUANT_TYPE({stem},")));
            for name in [k.t1, k.t8, k.silu_t1, k.silu_t8] {
                assert!(name.contains(&format!("_{stem}_")), "{name}");
            }
            if let Some(m) = k.mmq {
                assert!(k.instantiation.contains(&format!("MMQ_TYPE({stem},")));
                for nt in 1..=2 {
                    assert_eq!(m.plain[nt - 1], format!("mmq_{stem}_n{nt}"));
                    assert_eq!(m.silu[nt - 1], format!("mmq_silu_{stem}_n{nt}"));
                }
            }
        }
        assert_eq!(QuantType::from_ggml(GgmlDType::Q5K), None);
    }
}
