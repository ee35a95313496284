//! Server-sent events for a streaming request, in OpenAI's framing: one JSON chunk
//! per `data:` line, then `data: [DONE]`.
//!
//! The event stream owns the engine's `RequestStream`: when the client goes away,
//! axum drops the body, the `RequestStream` goes with it, and the engine aborts.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use hearth_engine::{Event, FinishReason, TokenLogprob, Usage};
use serde_json::{json, Value};

use super::types::UsageOut;
use crate::error::ApiError;
use crate::fan_out::merged;
use crate::tracked_stream::TrackedStream;

/// How one API shapes its chunks.
pub trait ChunkFormat: Send + 'static {
    /// A chunk sent before any token (chat's role delta).
    fn opening(&self) -> Option<Value> {
        None
    }
    fn delta(&self, text: &str, logprobs: &[TokenLogprob]) -> Value;
    fn finish(&self, reason: FinishReason) -> Value;
    /// The last chunk when the client asked for usage (`choices` empty).
    fn usage(&self, usage: UsageOut) -> Value;
    /// The chunks of one engine delta; a stateful format (tool-call parsing) may
    /// hold text back or split it into several chunks.
    fn deltas(&mut self, text: &str, logprobs: &[TokenLogprob]) -> Vec<Value> {
        vec![self.delta(text, logprobs)]
    }
    /// The chunks that end the answer (what a stateful format still holds, then
    /// the finish chunk).
    fn finishing(&mut self, reason: FinishReason) -> Vec<Value> {
        vec![self.finish(reason)]
    }
}

struct State<F> {
    /// Every choice's events, merged; `None` once the answer is over.
    events: Option<BoxStream<'static, (usize, Event)>>,
    /// One format per choice (a stateful one parses each choice on its own).
    fmts: Vec<F>,
    /// Choices not finished yet.
    running: usize,
    include_usage: bool,
    usage: Usage,
    pending: VecDeque<String>,
}

impl<F: ChunkFormat> State<F> {
    /// Waits for the next engine event and queues what it turns into.
    async fn pull(&mut self) {
        let Some(events) = self.events.as_mut() else {
            return;
        };
        match events.next().await {
            Some((i, Event::Delta { text, logprobs, .. })) => {
                // Empty deltas (a pending stop string or UTF-8 sequence) carry nothing.
                if !text.is_empty() || !logprobs.is_empty() {
                    for chunk in self.fmts[i].deltas(&text, &logprobs) {
                        self.push_choice(i, chunk);
                    }
                }
            }
            Some((i, Event::Finished { reason, usage })) => {
                for chunk in self.fmts[i].finishing(reason) {
                    self.push_choice(i, chunk);
                }
                // The prompt is counted once; every choice's tokens add up.
                self.usage.prompt_tokens = usage.prompt_tokens;
                self.usage.cached_prompt_tokens = self
                    .usage
                    .cached_prompt_tokens
                    .max(usage.cached_prompt_tokens);
                self.usage.completion_tokens += usage.completion_tokens;
                self.running -= 1;
                if self.running == 0 {
                    if self.include_usage {
                        let chunk = self.fmts[0].usage(self.usage.into());
                        self.push(chunk);
                    }
                    self.end();
                }
            }
            Some((_, Event::Error(msg))) => {
                self.push(ApiError::internal(msg).body());
                self.end();
            }
            None => {
                self.push(ApiError::internal("the engine ended the request early").body());
                self.end();
            }
        }
    }

    /// Queues a chunk of choice `i` (formats number their choice 0).
    fn push_choice(&mut self, i: usize, mut v: Value) {
        if let Some(choices) = v["choices"].as_array_mut() {
            for c in choices {
                c["index"] = json!(i);
            }
        }
        self.push(v);
    }

    fn push(&mut self, v: Value) {
        self.pending.push_back(v.to_string());
    }

    fn end(&mut self) {
        self.pending.push_back("[DONE]".to_string());
        self.events = None;
    }
}

/// The SSE body as a stream of `data:` payloads.
pub fn chunk_stream<F: ChunkFormat>(
    streams: Vec<TrackedStream>,
    fmts: Vec<F>,
    include_usage: bool,
) -> impl Stream<Item = String> + Send {
    let mut state = State {
        running: streams.len(),
        events: Some(merged(streams).boxed()),
        fmts,
        include_usage,
        usage: Usage::default(),
        pending: VecDeque::new(),
    };
    for i in 0..state.fmts.len() {
        if let Some(first) = state.fmts[i].opening() {
            state.push_choice(i, first);
        }
    }
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.pending.pop_front() {
                return Some((data, st));
            }
            st.events.as_ref()?;
            st.pull().await;
        }
    })
}

pub fn sse_response<F: ChunkFormat>(
    stream: TrackedStream,
    fmt: F,
    include_usage: bool,
) -> Response {
    sse_response_n(vec![stream], vec![fmt], include_usage)
}

/// `n` choices streamed together: `streams[i]` formatted by `fmts[i]`.
pub fn sse_response_n<F: ChunkFormat>(
    streams: Vec<TrackedStream>,
    fmts: Vec<F>,
    include_usage: bool,
) -> Response {
    let events = chunk_stream(streams, fmts, include_usage)
        .map(|data| Ok::<_, Infallible>(SseEvent::default().data(data)));
    Sse::new(events).into_response()
}
