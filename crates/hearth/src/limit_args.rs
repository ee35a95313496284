//! `serve` flags for per-request limits (hearth_server::limits::RequestLimits).

use clap::Args;
use hearth_server::limits::{
    RequestLimits, DEFAULT_MAX_N, DEFAULT_MAX_SCHEMA_BYTES, DEFAULT_MAX_SCHEMA_DEPTH,
    DEFAULT_MAX_TOOLS,
};

use crate::size::parse_size;

#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Longest prompt in tokens (after the chat template); longer ones get 400.
    #[arg(long)]
    pub max_prompt_tokens: Option<usize>,
    /// Largest max_tokens a request may ask for (larger: 400); also caps the default.
    #[arg(long)]
    pub max_output_tokens: Option<usize>,
    /// Most choices (`n`) per request.
    #[arg(long, default_value_t = DEFAULT_MAX_N)]
    pub max_n: usize,
    /// Most tools in one request.
    #[arg(long, default_value_t = DEFAULT_MAX_TOOLS)]
    pub max_tools: usize,
    /// Largest JSON schema (tool parameters, response format), e.g. 64KiB.
    #[arg(long, value_parser = parse_size, default_value_t = DEFAULT_MAX_SCHEMA_BYTES as u64)]
    pub max_schema_bytes: u64,
    /// Deepest nesting of one JSON schema.
    #[arg(long, default_value_t = DEFAULT_MAX_SCHEMA_DEPTH)]
    pub max_schema_depth: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_prompt_tokens: self.max_prompt_tokens,
            max_output_tokens: self.max_output_tokens,
            max_n: self.max_n,
            max_tools: self.max_tools,
            max_schema_bytes: usize::try_from(self.max_schema_bytes).unwrap_or(usize::MAX),
            max_schema_depth: self.max_schema_depth,
        }
    }
}
