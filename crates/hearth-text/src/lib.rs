//! hearth-text: text in, token ids out (and back).
//!
//! Tokenizers built from GGUF metadata (the `tokenizers` crate does the work), chat
//! templates rendered with minijinja, and an incremental detokenizer for streaming.
//! Never runs a model.
//!
//! Public API (other crates rely on these names):
//! - `Tokenizer::from_gguf_metadata(&HashMap<String, gguf_file::Value>) -> Result<Tokenizer>`
//!   (GGUF `gpt2` byte-level BPE, and SentencePiece `llama` built as transformers does),
//!   `from_gguf_file(path)`, `encode(&self, text, add_special_tokens) -> Result<Vec<u32>>`
//!   (BOS/EOS only where the GGUF's `add_bos_token`/`add_eos_token` ask),
//!   `decode(&self, ids, skip_special) -> Result<String>`, `bos_id()`, `eos_id()`, `pad_id()`
//!   (`Option<u32>`), `eos_ids() -> &[u32]` (every id that ends a turn), `adds_bos()`,
//!   `vocab_size()`, `token_to_id(&str)`, `id_to_token(u32)`, `hf()` (the HF tokenizer)
//! - `ChatTemplate::from_gguf_metadata(&metadata, &Tokenizer) -> Result<ChatTemplate>`,
//!   `ChatTemplate::new(source, bos_token, eos_token)` and
//!   `render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String>`
//! - `ChatMessage { role, content, tool_calls: Option<Vec<ToolCall>>, tool_call_id, name }`
//!   (serde; absent fields stay absent for the template), `ChatMessage::new(role, content)`,
//!   `assistant_tool_calls(content, calls)`, `tool_result(id, name, content)`;
//!   `ToolCall::function(id, name, arguments: serde_json::Value)`.
//! - `ChatTemplate::render_with_tools(messages, add_generation_prompt, tools: Option<&[Value]>,
//!   &extra)`: `tools` as `apply_chat_template(tools=...)` passes them; `tojson` is
//!   Python's `json.dumps` (transformers' filter); `source()`, `mentions_tools()`.
//! - Tool-call parsers (`tool_parsers`): `ToolParserKind` {Hermes, Llama3Json, Mistral}
//!   (`from_name` with vLLM's names + "none", `detect(arch, template)`, `new_parser()`);
//!   `ToolParser::push(&str) -> ParserDelta { text, calls: Vec<ToolCallDelta> }`, `finish()`;
//!   `parse_whole(parser, text) -> Parsed { content, calls: Vec<ParsedCall { name, arguments }> }`.
//! - `IncrementalDetokenizer::new(Arc<Tokenizer>, prompt_ids: &[u32])`, `with_skip_special(bool)`
//!   (default true), `push(&mut self, id) -> String` (the new text, possibly empty while a
//!   UTF-8 sequence is incomplete), `finish(&mut self) -> String`.
//! - `read_gguf_metadata(path)`: a GGUF's metadata without its tensors.
//! - Hugging Face folders: `Tokenizer::from_hf_dir(dir)` (tokenizer.json +
//!   tokenizer_config.json + generation_config.json), `ChatTemplate::from_hf_dir(dir, &tok)`,
//!   `ChatTemplate::render_with(messages, add_generation_prompt, &extra_vars)`.
//! - Structured outputs (llguidance): `ConstraintSpec` { JsonObject, JsonSchema, Regex,
//!   Choice, Lark }, `ConstraintCompiler::new(&Tokenizer)` once per model,
//!   `compile(&spec) -> Result<Constraint>`; `Constraint::mask() -> Result<TokenMask>`,
//!   `accept(id)`, `is_finished()`; `TokenMask::apply(&mut logits)`.

pub mod chat_message;
pub mod chat_template;
pub mod constraint;
pub mod detokenizer;
pub mod error;
mod gguf_bpe;
mod gguf_spm;
pub mod gguf_tokenizer;
mod hf_chat_template;
pub mod hf_tokenizer;
pub mod metadata;
pub mod pretokenizer;
mod py_json;
mod strftime;
#[cfg(test)]
mod test_util;
pub mod tool_parsers;

pub use chat_message::{ChatMessage, FunctionCall, ToolCall};
pub use chat_template::ChatTemplate;
pub use constraint::{Constraint, ConstraintCompiler, ConstraintSpec, TokenMask};
pub use detokenizer::IncrementalDetokenizer;
pub use error::TextError;
pub use gguf_tokenizer::Tokenizer;
pub use metadata::read_gguf_metadata;
