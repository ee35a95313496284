//! `hearth quantize SRC_DIR --type q8_0 -o OUT.gguf`: a Hugging Face folder to a GGUF
//! file llama.cpp and hearth both load.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hearth_models::quantize::{parse_quant_type, GgmlDType};

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// Hugging Face model folder (config.json, *.safetensors, tokenizer.json).
    pub src: PathBuf,
    /// Weight type of the matrices: f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k..q6_k.
    #[arg(long = "type", value_parser = parse_quant_arg, default_value = "q8_0")]
    pub dtype: GgmlDType,
    /// Output GGUF path.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// clap's parser for quantization names (shared with `serve --quantization`).
pub fn parse_quant_arg(s: &str) -> Result<GgmlDType, String> {
    parse_quant_type(s).map_err(|e| e.to_string())
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let s = hearth_models::hf_to_gguf::hf_to_gguf(&args.src, &args.output, args.dtype)
        .with_context(|| format!("converting {}", args.src.display()))?;
    println!(
        "wrote {} ({} {}, {} tensors, {:.1} MiB of weights)",
        args.output.display(),
        s.architecture,
        format!("{:?}", args.dtype).to_lowercase(),
        s.tensors,
        s.tensor_bytes as f64 / (1u64 << 20) as f64
    );
    Ok(())
}
