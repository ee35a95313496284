//! Submitting to the engine and draining a request's stream (non-streaming answers).

use std::sync::Arc;

use hearth_engine::{Event, FinishReason, Request, SamplingParams, TokenLogprob, Usage};

use hearth_text::ChatMessage;

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tracked_stream::TrackedStream;

/// Everything a request produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<TokenLogprob>,
    pub finish: FinishReason,
    pub usage: Usage,
}

/// Queues a request; what its stream yields is recorded in `ctx`.
pub fn submit(
    state: &AppState,
    ctx: &Arc<RequestContext>,
    prompt_ids: Vec<u32>,
    params: SamplingParams,
) -> Result<TrackedStream, ApiError> {
    ctx.fields().prompt_tokens = prompt_ids.len();
    state.limits.check_prompt(prompt_ids.len())?;
    state.limits.check_output("max_tokens", params.max_tokens)?;
    let stream = state.engine.submit(Request { prompt_ids, params })?;
    Ok(TrackedStream::new(stream, ctx.clone()))
}

/// Renders a conversation through the model's chat template, ending with the
/// assistant's turn opened, and tokenizes it. The template already holds any BOS
/// the model wants (vLLM does the same). `prefill` is text the assistant's answer
/// starts with (Anthropic's trailing assistant message); generation continues it.
pub fn chat_prompt_ids(
    state: &AppState,
    messages: &[ChatMessage],
    prefill: &str,
) -> Result<Vec<u32>, ApiError> {
    chat_prompt_ids_with(state, messages, prefill, &serde_json::Map::new())
}

/// `chat_prompt_ids` with extra template variables (`chat_template_kwargs`).
pub fn chat_prompt_ids_with(
    state: &AppState,
    messages: &[ChatMessage],
    prefill: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u32>, ApiError> {
    chat_prompt_ids_tools(state, messages, None, prefill, kwargs)
}

/// `chat_prompt_ids_with` plus the request's tools (OpenAI-style function tool
/// objects), rendered by the template as `apply_chat_template(tools=...)` does.
pub fn chat_prompt_ids_tools(
    state: &AppState,
    messages: &[ChatMessage],
    tools: Option<&[serde_json::Value]>,
    prefill: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u32>, ApiError> {
    let mut prompt = state
        .template
        .render_with_tools(messages, true, tools, kwargs)
        .map_err(|e| ApiError::invalid_param("messages", format!("chat template: {e}")))?;
    prompt.push_str(prefill);
    state
        .tokenizer
        .encode(&prompt, false)
        .map_err(|e| ApiError::internal(format!("tokenizer: {e}")))
}

/// Reads the stream to its end. The caller's future owns the stream, so a client
/// that goes away drops it and the engine aborts the request.
pub async fn collect(mut stream: TrackedStream) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut token_ids = Vec::new();
    let mut logprobs = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Event::Delta {
                text: t,
                token_ids: ids,
                logprobs: lp,
            } => {
                text.push_str(&t);
                token_ids.extend(ids);
                logprobs.extend(lp);
            }
            Event::Finished { reason, usage } => {
                return Ok(Collected {
                    text,
                    token_ids,
                    logprobs,
                    finish: reason,
                    usage,
                })
            }
            Event::Error(msg) => return Err(ApiError::internal(msg)),
        }
    }
    Err(ApiError::internal(
        "the engine ended the request without finishing it",
    ))
}

/// Reads every choice's stream to its end (all at once: they run together).
pub async fn collect_all(streams: Vec<TrackedStream>) -> Result<Vec<Collected>, ApiError> {
    futures::future::join_all(streams.into_iter().map(collect))
        .await
        .into_iter()
        .collect()
}

/// The usage of `n` answers to one prompt: the prompt counted once, every answer's
/// tokens added up.
pub fn total_usage(outs: &[Collected]) -> Usage {
    let mut total = outs.first().map(|o| o.usage).unwrap_or_default();
    total.completion_tokens = outs.iter().map(|o| o.usage.completion_tokens).sum();
    // Choices after the first reuse the prompt's blocks: report what was reused.
    total.cached_prompt_tokens = (outs.iter().map(|o| o.usage.cached_prompt_tokens))
        .max()
        .unwrap_or(0);
    total
}

/// A fresh id with OpenAI's prefix ("chatcmpl", "cmpl").
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
