//! Streaming in Anthropic's framing: `event: <name>` + `data: <json>` for
//! message_start, content_block_start, ping, content_block_delta..., content_block_stop,
//! message_delta, message_stop (or `error` if the engine fails).
//!
//! The event stream owns the engine's `RequestStream`: when the client goes away,
//! axum drops the body, the `RequestStream` goes with it, and the engine aborts.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use hearth_engine::{Event, FinishReason};
use serde_json::{json, Value};

use super::error::AnthropicError;
use super::reply::Reply;
use super::tool_stream::ToolBlocks;
use crate::error::ApiError;
use crate::tracked_stream::TrackedStream;
use hearth_text::tool_parsers::ToolParserKind;

struct State {
    stream: Option<TrackedStream>,
    reply: Reply,
    /// Every generated token, to tell which stop sequence ended the answer.
    token_ids: Vec<u32>,
    pending: VecDeque<(&'static str, Value)>,
    /// Set when the answer is read for tool calls (blocks then open as they come).
    tools: Option<ToolBlocks>,
}

impl State {
    async fn pull(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        match stream.next().await {
            Some(Event::Delta {
                text, token_ids, ..
            }) => {
                self.token_ids.extend(token_ids);
                // Empty deltas (a pending stop string or UTF-8 sequence) carry nothing.
                if let Some(tb) = self.tools.as_mut() {
                    let events = tb.push(&text);
                    for (name, data) in events {
                        self.push(name, data);
                    }
                } else if !text.is_empty() {
                    let delta = json!({ "type": "text_delta", "text": text });
                    self.push("content_block_delta", json!({ "index": 0, "delta": delta }));
                }
            }
            Some(Event::Finished { reason, usage }) => {
                let (mut stop_reason, mut stop_sequence) =
                    self.reply.stop_reason(reason, &self.token_ids);
                match self.tools.as_mut() {
                    Some(tb) => {
                        let events = tb.finish();
                        if tb.calls > 0 && reason == FinishReason::Stop {
                            (stop_reason, stop_sequence) = ("tool_use", None);
                        }
                        for (name, data) in events {
                            self.push(name, data);
                        }
                    }
                    None => self.push("content_block_stop", json!({ "index": 0 })),
                }
                self.push(
                    "message_delta",
                    json!({
                        "delta": { "stop_reason": stop_reason, "stop_sequence": stop_sequence },
                        "usage": { "output_tokens": usage.completion_tokens },
                    }),
                );
                self.push("message_stop", json!({}));
                self.stream = None;
            }
            Some(Event::Error(msg)) => self.fail(msg),
            None => self.fail("the engine ended the request early".into()),
        }
    }

    /// Queues an event; its `type` field is its name, as in Anthropic's stream.
    fn push(&mut self, name: &'static str, mut data: Value) {
        data["type"] = json!(name);
        self.pending.push_back((name, data));
    }

    fn fail(&mut self, msg: String) {
        let body = AnthropicError::from(ApiError::internal(msg)).body();
        self.pending.push_back(("error", body));
        self.stream = None;
    }
}

fn st_tools(tools: &Option<(ToolParserKind, bool)>) -> Option<ToolBlocks> {
    tools.map(|(kind, parallel)| ToolBlocks::new(kind, parallel))
}

/// The SSE body as (event name, data) pairs.
pub fn event_stream(
    stream: TrackedStream,
    reply: Reply,
) -> impl Stream<Item = (&'static str, Value)> + Send {
    let reply_tools = reply.tools;
    let mut st = State {
        stream: Some(stream),
        reply,
        token_ids: Vec::new(),
        pending: VecDeque::new(),
        tools: st_tools(&reply_tools),
    };
    let empty = st.reply.message(json!([]), (None, None), 0);
    st.push("message_start", json!({ "message": empty }));
    if st.tools.is_none() {
        let block = json!({ "type": "text", "text": "" });
        st.push(
            "content_block_start",
            json!({ "index": 0, "content_block": block }),
        );
    }
    st.push("ping", json!({}));
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((ev, st));
            }
            st.stream.as_ref()?;
            st.pull().await;
        }
    })
}

pub fn sse_response(stream: TrackedStream, reply: Reply) -> Response {
    let events = event_stream(stream, reply).map(|(name, data)| {
        Ok::<_, Infallible>(SseEvent::default().event(name).data(data.to_string()))
    });
    Sse::new(events).into_response()
}
