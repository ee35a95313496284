//! The async face of the engine (implemented with the engine loop).
//!
//! `EngineHandle` is `Clone + Send + Sync`:
//! - `EngineHandle::start(model: Box<dyn CausalLm>, tokenizer: Arc<hearth_text::Tokenizer>, config: EngineConfig) -> Result<EngineHandle, EngineError>`
//!   spawns the engine thread.
//! - `submit(&self, Request) -> Result<RequestStream, EngineError>`: validates (empty prompt,
//!   context length, cache size, queue) and queues; errors come back at once.
//! - `stats(&self) -> StatsSnapshot`, `max_model_len(&self) -> usize`, `config(&self) -> &EngineConfig`.
//! - `RequestStream::next(&mut self).await -> Option<Event>`; dropping it aborts the request
//!   and frees its blocks at once.
