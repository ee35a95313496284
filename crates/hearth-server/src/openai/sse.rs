//! Server-sent events for a streaming request, in OpenAI's framing: one JSON chunk
//! per `data:` line, then `data: [DONE]`.
//!
//! The event stream owns the engine's `RequestStream`: when the client goes away,
//! axum drops the body, the `RequestStream` goes with it, and the engine aborts.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use hearth_engine::{Event, FinishReason, TokenLogprob};
use serde_json::Value;

use super::types::UsageOut;
use crate::error::ApiError;
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
    stream: Option<TrackedStream>,
    fmt: F,
    include_usage: bool,
    pending: VecDeque<String>,
}

impl<F: ChunkFormat> State<F> {
    /// Waits for the next engine event and queues what it turns into.
    async fn pull(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        match stream.next().await {
            Some(Event::Delta { text, logprobs, .. }) => {
                // Empty deltas (a pending stop string or UTF-8 sequence) carry nothing.
                if !text.is_empty() || !logprobs.is_empty() {
                    for chunk in self.fmt.deltas(&text, &logprobs) {
                        self.push(chunk);
                    }
                }
            }
            Some(Event::Finished { reason, usage }) => {
                for chunk in self.fmt.finishing(reason) {
                    self.push(chunk);
                }
                if self.include_usage {
                    self.push(self.fmt.usage(usage.into()));
                }
                self.end();
            }
            Some(Event::Error(msg)) => {
                self.push(ApiError::internal(msg).body());
                self.end();
            }
            None => {
                self.push(ApiError::internal("the engine ended the request early").body());
                self.end();
            }
        }
    }

    fn push(&mut self, v: Value) {
        self.pending.push_back(v.to_string());
    }

    fn end(&mut self) {
        self.pending.push_back("[DONE]".to_string());
        self.stream = None;
    }
}

/// The SSE body as a stream of `data:` payloads.
pub fn chunk_stream<F: ChunkFormat>(
    stream: TrackedStream,
    fmt: F,
    include_usage: bool,
) -> impl Stream<Item = String> + Send {
    let mut state = State {
        stream: Some(stream),
        fmt,
        include_usage,
        pending: VecDeque::new(),
    };
    if let Some(first) = state.fmt.opening() {
        state.push(first);
    }
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.pending.pop_front() {
                return Some((data, st));
            }
            if st.stream.is_none() {
                return None;
            }
            st.pull().await;
        }
    })
}

pub fn sse_response<F: ChunkFormat>(
    stream: TrackedStream,
    fmt: F,
    include_usage: bool,
) -> Response {
    use futures::StreamExt;
    let events = chunk_stream(stream, fmt, include_usage)
        .map(|data| Ok::<_, Infallible>(SseEvent::default().data(data)));
    Sse::new(events).into_response()
}
