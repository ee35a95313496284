//! A chat answer read through a tool-call parser: the non-streamed `message` (content
//! plus `tool_calls`) and the streamed chunks (`delta.content`, then `delta.tool_calls`
//! pieces: id, type and name first, argument fragments after). Both follow one rule
//! for whitespace so they agree: when the answer has calls, whitespace at the end
//! of the text is dropped and empty text is `null`.

use hearth_engine::{FinishReason, TokenLogprob};
use hearth_text::tool_parsers::{collect, ParserDelta, ToolParser, ToolParserKind};
use serde_json::{json, Value};

use super::chat::ChatChunks;
use super::sse::ChunkFormat;
use super::tools::call_id;
use super::types::UsageOut;

/// `finish_reason` of an answer: a call ends the turn with `tool_calls`.
fn finish_reason(reason: FinishReason, calls: usize) -> &'static str {
    match reason {
        FinishReason::Stop if calls > 0 => "tool_calls",
        r => r.as_openai(),
    }
}

/// Non-streamed: the `message` and its `finish_reason`.
pub fn message(
    text: &str,
    kind: ToolParserKind,
    parallel: bool,
    reason: FinishReason,
) -> (Value, &'static str) {
    let mut parser = kind.new_parser();
    let mut all = parser.push(text);
    let rest = parser.finish();
    all.text.push_str(&rest.text);
    all.calls.extend(rest.calls);
    let mut parsed = collect(all);
    if !parallel {
        parsed.calls.truncate(1);
    }
    if parsed.calls.is_empty() {
        let msg = json!({ "role": "assistant", "content": parsed.content });
        return (msg, finish_reason(reason, 0));
    }
    let content = parsed.content.trim_end();
    let calls: Vec<Value> = parsed
        .calls
        .iter()
        .map(|c| {
            json!({
                "id": call_id(),
                "type": "function",
                "function": { "name": c.name, "arguments": c.arguments },
            })
        })
        .collect();
    let msg = json!({
        "role": "assistant",
        "content": if content.is_empty() { Value::Null } else { json!(content) },
        "tool_calls": calls,
    });
    (msg, finish_reason(reason, parsed.calls.len()))
}

/// Streamed chunks of a chat answer with tools.
pub struct ToolChunks {
    pub inner: ChatChunks,
    parser: Box<dyn ToolParser>,
    parallel: bool,
    /// Whitespace held back until text follows it (dropped if the answer calls).
    pending_ws: String,
    calls: usize,
}

/// The text to send now: `piece` after the held whitespace, up to its last
/// non-whitespace character; trailing whitespace is held (appended, never re-copied,
/// however much of it comes).
pub(crate) fn held_text(pending_ws: &mut String, piece: &str) -> String {
    let keep = piece.trim_end().len();
    if keep == 0 {
        pending_ws.push_str(piece);
        return String::new();
    }
    let mut text = std::mem::take(pending_ws);
    text.push_str(&piece[..keep]);
    pending_ws.push_str(&piece[keep..]);
    text
}

impl ToolChunks {
    pub fn new(inner: ChatChunks, kind: ToolParserKind, parallel: bool) -> Self {
        ToolChunks {
            inner,
            parser: kind.new_parser(),
            parallel,
            pending_ws: String::new(),
            calls: 0,
        }
    }

    fn chunk(&self, delta: Value, logprobs: Value, finish: Option<&str>) -> Value {
        self.inner
            .chunk(ChatChunks::choice(delta, logprobs, finish))
    }

    /// Chunks for what the parser gave back; `logprobs` ride on the text chunk.
    fn emit(&mut self, d: ParserDelta, logprobs: Value) -> Vec<Value> {
        let mut out = Vec::new();
        let text = held_text(&mut self.pending_ws, &d.text);
        if !text.is_empty() || !logprobs.is_null() {
            out.push(self.chunk(json!({ "content": text }), logprobs, None));
        }
        for c in d.calls {
            if !self.parallel && c.index > 0 {
                continue;
            }
            let piece = match c.name {
                Some(name) => {
                    self.calls = self.calls.max(c.index + 1);
                    json!({ "index": c.index, "id": call_id(), "type": "function",
                            "function": { "name": name, "arguments": "" } })
                }
                None if c.arguments.is_empty() => continue,
                None => json!({ "index": c.index, "function": { "arguments": c.arguments } }),
            };
            out.push(self.chunk(json!({ "tool_calls": [piece] }), Value::Null, None));
        }
        out
    }
}

impl ChunkFormat for ToolChunks {
    fn opening(&self) -> Option<Value> {
        self.inner.opening()
    }

    fn delta(&self, text: &str, logprobs: &[TokenLogprob]) -> Value {
        self.inner.delta(text, logprobs)
    }

    fn finish(&self, reason: FinishReason) -> Value {
        self.chunk(
            json!({}),
            Value::Null,
            Some(finish_reason(reason, self.calls)),
        )
    }

    fn usage(&self, usage: UsageOut) -> Value {
        self.inner.usage(usage)
    }

    fn deltas(&mut self, text: &str, logprobs: &[TokenLogprob]) -> Vec<Value> {
        let d = self.parser.push(text);
        let lp = self.inner.logprobs(logprobs);
        self.emit(d, lp)
    }

    fn finishing(&mut self, reason: FinishReason) -> Vec<Value> {
        let d = self.parser.finish();
        let mut out = self.emit(d, Value::Null);
        if self.calls == 0 && !self.pending_ws.is_empty() {
            let ws = std::mem::take(&mut self.pending_ws);
            out.push(self.chunk(json!({ "content": ws }), Value::Null, None));
        }
        out.push(self.finish(reason));
        out
    }
}

#[cfg(test)]
#[path = "tool_stream_tests.rs"]
mod tests;
