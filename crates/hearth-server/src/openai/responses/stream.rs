//! The Responses API's streaming events: `response.created` ... `response.completed`,
//! each named in its SSE `event:` line and its `type`, numbered by `sequence_number`.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hearth_engine::{Event, FinishReason};
use serde_json::{json, Value};

use super::reply::{output_text, ResponseShape};
use crate::error::ApiError;
use crate::tracked_stream::TrackedStream;

/// Called with the whole answer once the response completes (to store it).
pub type OnDone = Box<dyn FnOnce(&str) + Send>;

struct State {
    stream: Option<TrackedStream>,
    shape: ResponseShape,
    text: String,
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

    fn at(&self) -> Value {
        json!({ "item_id": self.shape.message_id, "output_index": 0, "content_index": 0 })
    }

    async fn pull(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        match stream.next().await {
            Some(Event::Delta { text, .. }) => {
                if !text.is_empty() {
                    self.text.push_str(&text);
                    let mut d = self.at();
                    d["delta"] = json!(text);
                    d["logprobs"] = json!([]);
                    self.push("response.output_text.delta", d);
                }
            }
            Some(Event::Finished { reason, usage }) => {
                self.finish(reason, usage);
            }
            Some(Event::Error(msg)) => self.fail(msg),
            None => self.fail("the engine ended the request early".into()),
        }
    }

    fn finish(&mut self, reason: FinishReason, usage: hearth_engine::Usage) {
        let text = std::mem::take(&mut self.text);
        let mut d = self.at();
        d["text"] = json!(text);
        d["logprobs"] = json!([]);
        self.push("response.output_text.done", d);
        let mut d = self.at();
        d["part"] = output_text(&text);
        self.push("response.content_part.done", d);
        let item = self.shape.message_item(&text, true);
        self.push(
            "response.output_item.done",
            json!({ "output_index": 0, "item": item }),
        );
        let object = self.shape.object(&text, Some((reason, usage)));
        let name = if object["status"] == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.push(name, json!({ "response": object }));
        if let Some(f) = self.on_done.take() {
            f(&text);
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

pub fn sse_response(stream: TrackedStream, shape: ResponseShape, on_done: OnDone) -> Response {
    let mut st = State {
        stream: Some(stream),
        shape,
        text: String::new(),
        sequence: 0,
        on_done: Some(on_done),
        pending: VecDeque::new(),
    };
    let running = st.shape.object("", None);
    st.push("response.created", json!({ "response": running }));
    st.push("response.in_progress", json!({ "response": running }));
    let item = st.shape.message_item("", false);
    st.push(
        "response.output_item.added",
        json!({ "output_index": 0, "item": item }),
    );
    let mut d = st.at();
    d["part"] = output_text("");
    st.push("response.content_part.added", d);
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
