//! `hearth plan MODEL [--memory 64GB] [--max-model-len N]`: weights, KV cache per token
//! and how many full-length sequences fit (arithmetic in `hearth_models::sizing`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hearth_models::quantize::GgmlDType;
use hearth_models::sizing::{plan, sizing_from_gguf, sizing_from_hf_dir, ModelSizing, Plan};
use hearth_models::KvDtype;

use crate::quantize_cmd::parse_quant_arg;
use crate::size::parse_size;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A GGUF file or a Hugging Face model folder.
    pub model: PathBuf,
    /// Memory for weights plus KV cache, e.g. 64GB or 16GiB.
    #[arg(long, value_parser = parse_size, default_value = "64GB")]
    pub memory: u64,
    /// Tokens per sequence (defaults to the model's context).
    #[arg(long)]
    pub max_model_len: Option<usize>,
    /// For a folder: the type `serve --quantization` would load it as.
    #[arg(long, value_parser = parse_quant_arg)]
    pub quantization: Option<GgmlDType>,
    /// KV cache block size (tokens), as `serve --block-size`.
    #[arg(long, default_value_t = 16)]
    pub block_size: usize,
    /// What K and V are stored in, as `serve --kv-cache-dtype` (f16, the CPU default;
    /// int8; or f32).
    #[arg(long, default_value_t = KvDtype::F16)]
    pub kv_cache_dtype: KvDtype,
}

/// Decimal units, as memory sizes are quoted ("64GB").
pub fn human(b: u64) -> String {
    let b = b as f64;
    match b {
        _ if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        _ if b >= 1e6 => format!("{:.2} MB", b / 1e6),
        _ if b >= 1e3 => format!("{:.1} KB", b / 1e3),
        _ => format!("{b} B"),
    }
}

pub fn report(s: &ModelSizing, p: &Plan, block_size: usize) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<28} {v}\n"));
    line("architecture", s.architecture.clone());
    line("parameters", format!("{:.3} B", s.params as f64 / 1e9));
    line("memory", human(p.memory));
    line("weights", human(p.weights_bytes));
    line(
        "hearth process",
        format!("{} (runtime, tokenizer)", human(p.process_bytes)),
    );
    line(
        "KV cache per token",
        format!("{} ({} K and V)", human(p.kv_bytes_per_token), p.kv_dtype),
    );
    line("left for KV cache", human(p.kv_budget));
    line("KV cache tokens", p.kv_tokens.to_string());
    line("max model len", p.max_model_len.to_string());
    line("KV per full sequence", human(p.kv_bytes_per_seq));
    line("concurrent full sequences", p.concurrent_seqs.to_string());
    // The article's "what it gets you" table: other lengths, same budget.
    let lens: Vec<usize> = [2048, 8192, 32768, 131072]
        .into_iter()
        .filter(|&l| l <= s.max_context)
        .collect();
    if !lens.is_empty() {
        out.push_str("\n  max model len   concurrent sequences\n");
    }
    for len in lens {
        let q = plan(s, p.memory, len, block_size, p.kv_dtype);
        out.push_str(&format!("  {len:>13}   {:>20}\n", q.concurrent_seqs));
    }
    if p.weights_bytes + p.process_bytes > p.memory {
        out.push_str("the weights alone do not fit in this memory\n");
    }
    out
}

pub fn run(args: PlanArgs) -> Result<()> {
    let sizing = if args.model.is_dir() {
        sizing_from_hf_dir(&args.model, args.quantization)
    } else {
        anyhow::ensure!(
            args.quantization.is_none(),
            "--quantization applies to Hugging Face folders (a GGUF file is sized as stored)"
        );
        sizing_from_gguf(&args.model)
    }
    .with_context(|| format!("sizing {}", args.model.display()))?;
    let len = args.max_model_len.unwrap_or(sizing.max_context);
    print!(
        "{}",
        report(
            &sizing,
            &plan(
                &sizing,
                args.memory,
                len,
                args.block_size,
                args.kv_cache_dtype
            ),
            args.block_size
        )
    );
    if args.model.is_dir() {
        print!("{}", by_type(&args, len)?);
    }
    Ok(())
}

/// A folder's weights and full-length sequences for each `--quantization` choice.
fn by_type(args: &PlanArgs, len: usize) -> Result<String> {
    let mut out = format!(
        "\n  {:<10} {:>12}   concurrent sequences of {len}\n",
        "type", "weights"
    );
    for name in ["f32", "f16", "q8_0", "q6_k", "q5_k", "q4_k", "q4_1", "q4_0"] {
        let q = parse_quant_arg(name).map_err(anyhow::Error::msg)?;
        let q = (name != "f32").then_some(q);
        let s = sizing_from_hf_dir(&args.model, q)?;
        let p = plan(&s, args.memory, len, args.block_size, args.kv_cache_dtype);
        out.push_str(&format!(
            "  {name:<10} {:>12}   {}\n",
            human(s.weights_bytes),
            p.concurrent_seqs
        ));
    }
    Ok(out)
}
