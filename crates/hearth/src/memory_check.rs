//! `serve` refuses, before loading, a model whose weights plus KV cache exceed the
//! memory limit (`--memory`, else the RAM the kernel reports available).

use std::path::Path;

use anyhow::{bail, Result};
use hearth_models::quantize::GgmlDType;
use hearth_models::sizing::{sizing_from_gguf, sizing_from_hf_dir, PROCESS_OVERHEAD_BYTES};

/// `MemAvailable` of /proc/meminfo in bytes (None where there is no such file).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The refusal message, if `weights + process + kv_cache` exceeds `limit` (`process`:
/// what hearth itself holds besides weights and cache).
pub fn over_limit(
    weights: u64,
    process: u64,
    kv_cache: u64,
    limit: u64,
    what: &str,
) -> Option<String> {
    let gb = crate::plan_cmd::human;
    let held = weights.saturating_add(process);
    if held > limit {
        return Some(format!(
            "the model's weights alone take {} (and hearth itself {}), more than the {} {what}; \
             try a smaller model or weight type (`--quantization` for a folder; see `hearth plan`)",
            gb(weights),
            gb(process),
            gb(limit)
        ));
    }
    (held.saturating_add(kv_cache) > limit).then(|| {
        format!(
            "weights ({}) and hearth itself ({}) plus the KV cache ({}) exceed the {} {what}; \
             lower --kv-cache-memory (see `hearth plan`)",
            gb(weights),
            gb(process),
            gb(kv_cache),
            gb(limit)
        )
    })
}

/// Checks `model` against `limit` (or available RAM). Models the sizing code cannot
/// read are let through: the loader reports their problems better.
pub fn check(
    model: &Path,
    quantization: Option<GgmlDType>,
    kv_cache: u64,
    limit: Option<u64>,
) -> Result<()> {
    let (limit, what) = match limit {
        Some(l) => (l, "--memory limit"),
        None => match available_memory() {
            Some(l) => (l, "memory available"),
            None => return Ok(()),
        },
    };
    let sizing = if model.is_dir() {
        sizing_from_hf_dir(model, quantization)
    } else {
        sizing_from_gguf(model)
    };
    let Ok(s) = sizing else { return Ok(()) };
    // As `hearth plan` counts: weights, the process itself, the cache.
    if let Some(msg) = over_limit(
        s.weights_bytes,
        PROCESS_OVERHEAD_BYTES,
        kv_cache,
        limit,
        what,
    ) {
        bail!("refusing to load {}: {msg}", model.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_weights_or_weights_plus_cache_over_the_limit() {
        let (g, p) = (1_000_000_000u64, 80_000_000u64);
        assert!(over_limit(10 * g, p, g, 64 * g, "limit").is_none());
        let m = over_limit(70 * g, p, g, 64 * g, "--memory limit").expect("too big");
        assert!(
            m.contains("weights alone take 70.00 GB") && m.contains("than the 64.00 GB"),
            "{m}"
        );
        // The process's own memory is what tips these over.
        assert!(over_limit(64 * g - p / 2, p, 0, 64 * g, "limit").is_some());
        let m = over_limit(60 * g, p, 4 * g - p / 2, 64 * g, "limit").expect("cache too big");
        assert!(m.contains("--kv-cache-memory"), "{m}");
        assert!(available_memory().is_none_or(|b| b > 0));
    }
}
