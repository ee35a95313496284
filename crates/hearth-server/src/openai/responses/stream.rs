//! The Responses API's streaming events, named in each SSE `event:` line and in
//! the data's `type`, numbered by `sequence_number`: `response.created`,
//! `response.in_progress`, then per output item (a message's text deltas, or a
//! function call's argument deltas) its added/delta/done events, and at the end
//! `response.completed` (or `response.incomplete`).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hearth_engine::{Event, FinishReason, Usage};
use hearth_text::tool_parsers::{ParserDelta, ToolParser};
use serde_json::{json, Value};

use super::reply::{output_text, ResponseShape};
use super::tools::call_item;
use crate::error::ApiError;
use crate::generate::new_id;
use crate::openai::tools::call_id;
use crate::tracked_stream::TrackedStream;

/// Called with the output items once the response completes (to store it).
pub type OnDone = Box<dyn FnOnce(&[Value]) + Send>;

/// The output item being streamed.
enum Open {
    None,
    Message {
        text: String,
    },
    Call {
        id: String,
        call: String,
        name: String,
        args: String,
    },
}

struct State {
    stream: Option<TrackedStream>,
    shape: ResponseShape,
    /// Finds calls in the text when the request has tools.
    parser: Option<Box<dyn ToolParser>>,
    parallel: bool,
    items: Vec<Value>,
    open: Open,
    sequence: u64,
    on_done: Option<OnDone>,
    pending: VecDeque<(&'static str, Value)>,
}

impl State {
    fn push(&mut self, name: &'static str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        self.pending.push_back((name, data));
    }

    /// Where the open item's events point.
    fn at(&self, item_id: &str) -> Value {
        json!({ "item_id": item_id, "output_index": self.items.len(), "content_index": 0 })
    }

    async fn pull(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        match stream.next().await {
            Some(Event::Delta { text, .. }) if !text.is_empty() => {
                let delta = match self.parser.as_mut() {
                    Some(p) => p.push(&text),
                    None => ParserDelta {
                        text,
                        calls: Vec::new(),
                    },
                };
                self.apply(delta);
            }
            Some(Event::Delta { .. }) => {}
            Some(Event::Finished { reason, usage }) => self.finish(reason, usage),
            Some(Event::Error(msg)) => self.fail(msg),
            None => self.fail("the engine ended the request early".into()),
        }
    }

    fn apply(&mut self, delta: ParserDelta) {
        if !delta.text.is_empty() {
            if !matches!(self.open, Open::Message { .. }) {
                self.close();
                self.open_message();
            }
            if let Open::Message { text } = &mut self.open {
                text.push_str(&delta.text);
            }
            let mut d = self.at(&self.shape.message_id.clone());
            d["delta"] = json!(delta.text);
            d["logprobs"] = json!([]);
            self.push("response.output_text.delta", d);
        }
        for c in delta.calls {
            if c.index > 0 && !self.parallel {
                continue;
            }
            if let Some(name) = c.name {
                self.close();
                let (id, call) = (new_id("fc"), call_id());
                let item = call_item(&id, &call, &name, "", false);
                let index = self.items.len();
                self.push(
                    "response.output_item.added",
                    json!({ "output_index": index, "item": item }),
                );
                self.open = Open::Call {
                    id,
                    call,
                    name,
                    args: String::new(),
                };
            }
            if let Open::Call { id, args, .. } = &mut self.open {
                if !c.arguments.is_empty() {
                    args.push_str(&c.arguments);
                    let id = id.clone();
                    let d = json!({ "item_id": id, "output_index": self.items.len(), "delta": c.arguments });
                    self.push("response.function_call_arguments.delta", d);
                }
            }
        }
    }

    fn open_message(&mut self) {
        let item = self.shape.message_item("", false);
        let index = self.items.len();
        self.push(
            "response.output_item.added",
            json!({ "output_index": index, "item": item }),
        );
        let mut d = self.at(&self.shape.message_id.clone());
        d["part"] = output_text("");
        self.push("response.content_part.added", d);
        self.open = Open::Message {
            text: String::new(),
        };
    }

    /// Ends the open item with its done events.
    fn close(&mut self) {
        let index = self.items.len();
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Message { text } => {
                let mut d = self.at(&self.shape.message_id.clone());
                d["text"] = json!(text);
                d["logprobs"] = json!([]);
                self.push("response.output_text.done", d);
                let mut d = self.at(&self.shape.message_id.clone());
                d["part"] = output_text(&text);
                self.push("response.content_part.done", d);
                let item = self.shape.message_item(&text, true);
                self.push(
                    "response.output_item.done",
                    json!({ "output_index": index, "item": item.clone() }),
                );
                self.items.push(item);
            }
            Open::Call {
                id,
                call,
                name,
                args,
            } => {
                let d = json!({ "item_id": id, "output_index": index, "name": name, "arguments": args });
                self.push("response.function_call_arguments.done", d);
                let item = call_item(&id, &call, &name, &args, true);
                self.push(
                    "response.output_item.done",
                    json!({ "output_index": index, "item": item.clone() }),
                );
                self.items.push(item);
            }
        }
    }

    fn finish(&mut self, reason: FinishReason, usage: Usage) {
        if let Some(rest) = self.parser.as_mut().map(|p| p.finish()) {
            self.apply(rest);
        }
        if self.items.is_empty() && matches!(self.open, Open::None) {
            self.open_message();
        }
        self.close();
        let object = self.shape.object(&self.items, Some((reason, usage)));
        let name = if object["status"] == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.push(name, json!({ "response": object }));
        if let Some(f) = self.on_done.take() {
            f(&self.items);
        }
        self.stream = None;
    }

    fn fail(&mut self, msg: String) {
        let e = ApiError::internal(msg);
        self.push(
            "error",
            json!({ "code": e.kind, "message": e.message, "param": null }),
        );
        self.stream = None;
    }
}

pub fn sse_response(
    stream: TrackedStream,
    shape: ResponseShape,
    parser: Option<Box<dyn ToolParser>>,
    parallel: bool,
    on_done: OnDone,
) -> Response {
    let tools = parser.is_some();
    let mut st = State {
        stream: Some(stream),
        shape,
        parser,
        parallel,
        items: Vec::new(),
        open: Open::None,
        sequence: 0,
        on_done: Some(on_done),
        pending: VecDeque::new(),
    };
    let running = st.shape.object(&[], None);
    st.push("response.created", json!({ "response": running }));
    st.push("response.in_progress", json!({ "response": running }));
    // Without tools the answer is one message: open it at once. With tools, an item
    // opens when the answer shows what it is.
    if !tools {
        st.open_message();
    }
    let events = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((ev, st));
            }
            st.stream.as_ref()?;
            st.pull().await;
        }
    });
    let sse = events.map(|(name, data): (&'static str, Value)| {
        Ok::<_, Infallible>(SseEvent::default().event(name).data(data.to_string()))
    });
    Sse::new(sse).into_response()
}
