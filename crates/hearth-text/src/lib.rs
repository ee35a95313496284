//! hearth-text: text in, token ids out (and back).
//!
//! Tokenizers built from GGUF metadata (the `tokenizers` crate does the work), chat
//! templates rendered with minijinja, and an incremental detokenizer for streaming.
//! Never runs a model.
//!
//! Public API (other crates rely on these names):
//! - `Tokenizer::from_gguf_metadata(&HashMap<String, gguf_file::Value>) -> Result<Tokenizer>`
//!   `encode(&self, text, add_special_tokens) -> Result<Vec<u32>>`, `decode(&self, ids, skip_special) -> Result<String>`,
//!   `bos_id()`, `eos_ids() -> &[u32]` (every id that ends a turn), `vocab_size()`, `token_to_id(&str)`, `id_to_token(u32)`
//! - `ChatTemplate::from_gguf_metadata(&metadata, &Tokenizer) -> Result<ChatTemplate>` and
//!   `render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String>`
//! - `ChatMessage { role: String, content: String }`
//! - `IncrementalDetokenizer::new(Arc<Tokenizer>, prompt_ids: &[u32])`, `push(&mut self, id) -> String`
//!   (the new text, possibly empty while a UTF-8 sequence is incomplete), `finish(&mut self) -> String`.

pub mod chat_template;
pub mod detokenizer;
pub mod error;
mod gguf_bpe;
pub mod gguf_tokenizer;
pub mod metadata;
pub mod pretokenizer;
mod strftime;
#[cfg(test)]
mod test_util;

pub use chat_template::{ChatMessage, ChatTemplate};
pub use detokenizer::IncrementalDetokenizer;
pub use error::TextError;
pub use gguf_tokenizer::Tokenizer;
pub use metadata::read_gguf_metadata;
