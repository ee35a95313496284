//! Memory arithmetic: what a model's weights take, what each token of KV cache takes,
//! and how many full-length sequences fit beside the weights in a memory budget.

use crate::gguf_meta::{get_str, get_usize, req_usize};
use crate::hf_config::HfConfig;
use crate::kv_cache::{KvCacheLayout, KvDtype};
use crate::quantize::fitting_type;
use crate::safetensors::shard_files;
use crate::ModelError;
use candle_core::quantized::GgmlDType;
use candle_core::safetensors::MmapedSafetensors;
use std::path::Path;

/// What the hearth process itself holds besides weights and KV cache (runtime, thread
/// stacks, tokenizer, allocator slack): measured as resident memory after requests minus
/// weights, 60-80 MB for the four full-size models of BENCHMARKS.md.
pub const PROCESS_OVERHEAD_BYTES: u64 = 80_000_000;

/// What a step holds on the GPU besides weights and KV cache (activations of a step's
/// tokens, the LM head's logits, cuBLAS workspace): an estimate set aside from the
/// `--gpu-memory-utilization` share before the KV cache takes the rest.
pub const GPU_STEP_RESERVE_BYTES: u64 = 1 << 30;

/// A `--gpu-memory-utilization` must be a fraction in (0, 1].
pub fn check_gpu_utilization(utilization: f64) -> Result<(), ModelError> {
    if utilization > 0.0 && utilization <= 1.0 {
        return Ok(());
    }
    Err(ModelError::Setting(format!(
        "--gpu-memory-utilization must be in (0, 1], got {utilization}"
    )))
}

/// vLLM's `--gpu-memory-utilization`: hearth may use `utilization` of the GPU's `total`
/// memory. What is in use once the weights are on it (`total - free`, other processes'
/// memory included) and `GPU_STEP_RESERVE_BYTES` come out of that share; the KV cache
/// gets the rest. An error says why nothing is left.
pub fn gpu_kv_budget(total: u64, free: u64, utilization: f64) -> Result<u64, ModelError> {
    check_gpu_utilization(utilization)?;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let share = (total as f64 * utilization) as u64;
    let used = total.saturating_sub(free);
    let kv = share
        .saturating_sub(used)
        .saturating_sub(GPU_STEP_RESERVE_BYTES);
    if kv == 0 {
        return Err(ModelError::Setting(format!(
            "no GPU memory left for the KV cache: {utilization} of {:.1} GiB is {:.1} GiB, \
             {:.1} GiB is in use with the weights loaded (other processes included) and \
             {:.1} GiB is kept for a step's activations; raise --gpu-memory-utilization \
             or free the GPU",
            gib(total),
            gib(share),
            gib(used),
            gib(GPU_STEP_RESERVE_BYTES)
        )));
    }
    Ok(kv)
}

/// Bytes of a `[rows, cols]` matrix of `dtype` as hearth holds it: Q4_K is repacked into
/// units of 8 rows with unpacked 6-bit scales (148 bytes per 256 weights, not 144); Q4_1
/// and Q8_0 into units of 8 rows of the file's own bytes.
pub fn held_bytes(dtype: GgmlDType, rows: usize, cols: usize) -> u64 {
    if dtype == GgmlDType::Q4K {
        return (rows.div_ceil(8) * 8 * (cols / 256) * 148) as u64;
    }
    if matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q8_0) {
        // Units of 8 rows, the last padded.
        return (rows.div_ceil(8) * 8 * cols / dtype.block_size() * dtype.type_size()) as u64;
    }
    (rows * cols / dtype.block_size() * dtype.type_size()) as u64
}

/// The shape facts the plan needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSizing {
    pub architecture: String,
    /// Bytes of weights as hearth holds them.
    pub weights_bytes: u64,
    pub params: u64,
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub max_context: usize,
}

impl ModelSizing {
    /// K and V of one token over all layers, stored as `dtype`.
    pub fn kv_bytes_per_token(&self, dtype: KvDtype) -> u64 {
        2 * (self.num_layers * self.num_kv_heads * dtype.head_bytes(self.head_dim)) as u64
    }
}

/// What fits in `memory`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub memory: u64,
    pub kv_dtype: KvDtype,
    pub weights_bytes: u64,
    /// `PROCESS_OVERHEAD_BYTES`.
    pub process_bytes: u64,
    pub kv_bytes_per_token: u64,
    /// Memory left for the KV cache (0 when the weights do not fit).
    pub kv_budget: u64,
    pub max_model_len: usize,
    /// KV bytes of one sequence of `max_model_len` tokens (whole blocks).
    pub kv_bytes_per_seq: u64,
    /// Sequences of `max_model_len` tokens that fit at once.
    pub concurrent_seqs: u64,
    /// Tokens the KV cache holds in all (whole blocks).
    pub kv_tokens: u64,
}

/// The plan for `memory` bytes (weights and the process first, the rest KV cache of
/// `kv_dtype` in `block_size` blocks, as the engine sizes it with
/// `KvCacheLayout::blocks_for_budget`).
pub fn plan(
    s: &ModelSizing,
    memory: u64,
    max_model_len: usize,
    block_size: usize,
    kv_dtype: KvDtype,
) -> Plan {
    let bs = block_size.max(1);
    let kv_budget = memory.saturating_sub(s.weights_bytes + PROCESS_OVERHEAD_BYTES);
    let per_token = s.kv_bytes_per_token(kv_dtype);
    let blocks = KvCacheLayout::blocks_for_budget(
        s.num_layers,
        s.num_kv_heads,
        s.head_dim,
        bs,
        usize::try_from(kv_budget).unwrap_or(usize::MAX),
        kv_dtype,
    ) as u64;
    let blocks_per_seq = max_model_len.div_ceil(bs).max(1) as u64;
    Plan {
        memory,
        kv_dtype,
        weights_bytes: s.weights_bytes,
        process_bytes: PROCESS_OVERHEAD_BYTES,
        kv_bytes_per_token: per_token,
        kv_budget,
        max_model_len,
        kv_bytes_per_seq: blocks_per_seq * bs as u64 * per_token,
        concurrent_seqs: blocks / blocks_per_seq,
        kv_tokens: blocks * bs as u64,
    }
}

/// A GGUF file: weights are its tensors' bytes as held (`held_bytes`), shapes from
/// `<arch>.*` metadata.
pub fn sizing_from_gguf(path: &Path) -> Result<ModelSizing, ModelError> {
    let mut f = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let c = crate::gguf_read::read_content(&mut f, &path.display().to_string())?;
    let md = &c.metadata;
    let arch = get_str(md, "general.architecture")?
        .ok_or_else(|| ModelError::Invalid("no general.architecture".into()))?;
    let k = |s: &str| format!("{arch}.{s}");
    let (mut bytes, mut params) = (0u64, 0u64);
    for info in c.tensor_infos.values() {
        let n = info.shape.elem_count();
        params += n as u64;
        let dims = info.shape.dims();
        bytes += match dims {
            [rows, cols] => held_bytes(info.ggml_dtype, *rows, *cols),
            _ => (n / info.ggml_dtype.block_size() * info.ggml_dtype.type_size()) as u64,
        };
    }
    let heads = req_usize(md, &k("attention.head_count"))?;
    let head_dim = match get_usize(md, &k("attention.key_length"))? {
        Some(d) => d,
        None => req_usize(md, &k("embedding_length"))? / heads.max(1),
    };
    Ok(ModelSizing {
        architecture: arch.to_string(),
        weights_bytes: bytes,
        params,
        num_layers: req_usize(md, &k("block_count"))?,
        num_kv_heads: get_usize(md, &k("attention.head_count_kv"))?.unwrap_or(heads),
        head_dim,
        max_context: get_usize(md, &k("context_length"))?.unwrap_or(2048),
    })
}

/// A Hugging Face folder as `load_safetensors_dir_with(dir, quantization)` holds it:
/// matrices quantized when asked, everything else f32 (the dense path computes in f32,
/// so bf16 files double in memory); a tied head shares the embedding.
pub fn sizing_from_hf_dir(
    dir: &Path,
    quantization: Option<GgmlDType>,
) -> Result<ModelSizing, ModelError> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| ModelError::Io {
        path: cfg_path.display().to_string(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", cfg_path.display())))?;
    let (spec, tied) = if crate::gemma3::is_gemma3(&json) {
        let g = crate::gemma3::Gemma3Config::from_json(&json)?;
        (g.spec(), g.tie_word_embeddings)
    } else {
        let hf = HfConfig::from_json(&json)?;
        (hf.llama.spec(), hf.tie_word_embeddings)
    };
    let files = shard_files(dir)?;
    // SAFETY: read-only map used only to read tensor headers here.
    let st = unsafe { MmapedSafetensors::multi(&files) }
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.display())))?;
    let (mut bytes, mut params) = (0u64, 0u64);
    for (name, view) in st.tensors() {
        let shape = view.shape();
        let n: usize = shape.iter().product();
        // A tied head shares the embedding; the vision half of a multimodal
        // checkpoint is never loaded.
        let vision = name.contains("vision_tower") || name.contains("multi_modal_projector");
        if (tied && name.ends_with("lm_head.weight")) || vision {
            continue;
        }
        params += n as u64;
        bytes += match (quantization, shape) {
            (Some(q), [rows, cols]) => held_bytes(fitting_type(q, *cols), *rows, *cols),
            _ => n as u64 * 4,
        };
    }
    Ok(ModelSizing {
        architecture: spec.architecture,
        weights_bytes: bytes,
        params,
        num_layers: spec.num_layers,
        num_kv_heads: spec.num_kv_heads,
        head_dim: spec.head_dim,
        max_context: spec.max_context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// 80 GiB GPU, 0.9 of it: 72 GiB, less 8 GiB in use and the 1 GiB step reserve.
    #[test]
    fn gpu_budget_is_the_share_less_what_is_used_and_the_reserve() {
        assert_eq!(gpu_kv_budget(80 * GIB, 72 * GIB, 0.9).ok(), Some(63 * GIB));
        assert_eq!(gpu_kv_budget(80 * GIB, 72 * GIB, 1.0).ok(), Some(71 * GIB));
        // Another process holding 30 GiB leaves that much less.
        assert_eq!(gpu_kv_budget(80 * GIB, 42 * GIB, 0.9).ok(), Some(33 * GIB));
    }

    #[test]
    fn gpu_budget_refuses_bad_fractions_and_a_full_gpu() {
        for u in [0.0, -0.5, 1.01, f64::NAN] {
            let e = gpu_kv_budget(80 * GIB, 72 * GIB, u)
                .unwrap_err()
                .to_string();
            assert!(e.contains("must be in (0, 1]"), "{e}");
        }
        // 0.1 of 80 GiB is 8 GiB, all of it taken by the weights already.
        let e = gpu_kv_budget(80 * GIB, 72 * GIB, 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no GPU memory left for the KV cache"), "{e}");
        assert!(e.contains("8.0 GiB is in use"), "{e}");
    }

    /// Llama 3.1 8B's shape: 32 layers, 8 KV heads of 128.
    fn llama8b(weights: u64) -> ModelSizing {
        ModelSizing {
            architecture: "llama".into(),
            weights_bytes: weights,
            params: 8_030_000_000,
            num_layers: 32,
            num_kv_heads: 8,
            head_dim: 128,
            max_context: 131_072,
        }
    }

    #[test]
    fn kv_per_token_is_k_and_v_over_layers() {
        // 2 * 32 * 8 * 128 * 4 = 256 KiB in f32, 128 KiB in f16 (llama.cpp's default).
        assert_eq!(llama8b(0).kv_bytes_per_token(KvDtype::F32), 256 << 10);
        assert_eq!(llama8b(0).kv_bytes_per_token(KvDtype::F16), 128 << 10);
        // int8: a byte a value and an f32 scale per head: 2 * 32 * 8 * (128 + 4).
        assert_eq!(llama8b(0).kv_bytes_per_token(KvDtype::Int8), 67_584);
    }

    #[test]
    fn an_f16_cache_holds_twice_the_sequences() {
        let gib = 1u64 << 30;
        let weights = 16 * gib - PROCESS_OVERHEAD_BYTES;
        let p = plan(&llama8b(weights), 64 * gib, 8192, 16, KvDtype::F16);
        assert_eq!((p.kv_bytes_per_seq, p.concurrent_seqs), (gib, 48));
        assert_eq!(p.kv_tokens, 48 * 8192);
    }

    #[test]
    fn sequences_that_fit_beside_the_weights() {
        let gib = 1u64 << 30;
        let weights = 16 * gib - PROCESS_OVERHEAD_BYTES;
        let p = plan(&llama8b(weights), 64 * gib, 8192, 16, KvDtype::F32);
        assert_eq!(p.kv_budget, 48 * gib);
        // 8192 tokens * 256 KiB = 2 GiB a sequence: 24 fit in 48 GiB.
        assert_eq!(p.kv_bytes_per_seq, 2 * gib);
        assert_eq!(p.concurrent_seqs, 24);
        assert_eq!(p.kv_tokens, 48 * 4096);
        // A length that is not a whole number of blocks takes whole blocks.
        let p = plan(&llama8b(weights), 64 * gib, 8190, 16, KvDtype::F32);
        assert_eq!((p.kv_bytes_per_seq, p.concurrent_seqs), (2 * gib, 24));
        // The process's own memory comes out of the cache's share.
        let p = plan(&llama8b(16 * gib), 64 * gib, 8192, 16, KvDtype::F32);
        assert_eq!(p.concurrent_seqs, 23);
    }

    #[test]
    fn weights_larger_than_memory_leave_nothing() {
        let p = plan(&llama8b(70 << 30), 64 << 30, 4096, 16, KvDtype::F32);
        assert_eq!((p.kv_budget, p.concurrent_seqs, p.kv_tokens), (0, 0, 0));
    }

    #[test]
    fn hf_fixture_sizes_follow_the_quantization() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/llama3");
        let f32 = sizing_from_hf_dir(&dir, None).expect("f32");
        let q8 = sizing_from_hf_dir(&dir, Some(GgmlDType::Q8_0)).expect("q8_0");
        // 2 layers, 2 KV heads of 16: 2 * 2 * 2 * 16 * 4 bytes.
        assert_eq!(f32.kv_bytes_per_token(KvDtype::F32), 512);
        assert_eq!(f32.weights_bytes, f32.params * 4);
        // Every matrix shrinks to 34/128 of f32; only the norms (5 * 64 floats) stay.
        let vectors = 5 * 64 * 4;
        assert_eq!(
            q8.weights_bytes - vectors,
            (f32.weights_bytes - vectors) * 34 / 128
        );
    }

    /// The shape read for sizing is the one the loader builds, for every architecture.
    #[test]
    fn hf_sizing_agrees_with_the_loaded_spec() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
        for name in ["llama3", "qwen2", "qwen3", "gemma3"] {
            let s = sizing_from_hf_dir(&root.join(name), None).expect("sizing");
            let spec = crate::load_safetensors_dir(&root.join(name))
                .expect("load")
                .spec;
            assert_eq!(
                (
                    s.architecture.as_str(),
                    s.num_layers,
                    s.num_kv_heads,
                    s.head_dim
                ),
                (
                    spec.architecture.as_str(),
                    spec.num_layers,
                    spec.num_kv_heads,
                    spec.head_dim
                ),
                "{name}"
            );
            assert_eq!(s.weights_bytes, s.params * 4, "{name}: f32 as loaded");
        }
    }
}
