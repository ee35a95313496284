//! hearth-models: weights in, logits out.
//!
//! Loads model files (GGUF today), builds architectures as candle modules that read
//! the paged KV cache, and checks model-file integrity. Knows nothing of requests,
//! scheduling or sampling.

pub mod attention;
pub mod batch;
mod cpu_op_inputs;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
mod exp2;
mod gated_mul;
pub mod gemma3;
pub mod gguf;
pub mod gguf_meta;
pub mod gguf_read;
pub mod gguf_stream;
pub mod hf_config;
pub mod hf_load;
pub mod hf_to_gguf;
pub mod hf_vocab_meta;
mod hf_vocab_spm;
pub mod huge_pages;
pub mod integrity;
pub mod kv_cache;
pub mod kv_copy;
mod kv_int8;
pub mod llama;
pub mod model;
pub mod phase_times;
pub mod quant;
pub mod quantize;
mod rms_norm;
mod rotary;
pub mod safetensors;
mod shared_out;
pub mod sizing;
mod step_buffers;
mod step_rows;
pub mod store;
#[cfg(test)]
mod test_data;
pub mod threads;
pub mod top_logits;

pub use batch::{BatchInput, Pick, SeqInput};
pub use error::ModelError;
pub use gguf::{load_gguf, load_gguf_from, load_gguf_with, LoadOptions, LoadedGguf};
pub use hf_load::{load_safetensors_dir, load_safetensors_dir_with, LoadedModel};
pub use kv_cache::{KvCache, KvCacheLayout, KvDtype, KvPool, KvSide};
pub use kv_copy::KvCopy;
pub use model::{CausalLm, ModelSpec, Next};
pub use top_logits::{TopLogits, TOP_CANDIDATES};
