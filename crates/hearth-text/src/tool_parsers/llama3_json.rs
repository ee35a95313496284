//! Llama 3.x JSON tool calls: the answer *is* the call, `{"name": "f", "parameters": {...}}`
//! (after an optional `<|python_tag|>`), several separated by `;`. An answer that does
//! not start that way is plain text, as in vLLM's `llama3_json`.

use serde_json::Value;

use super::json_scan::{JsonScan, Step};
use super::{call_from_value, ParserDelta, ToolParser};

pub const PYTHON_TAG: &str = "<|python_tag|>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before a call: whitespace, the tag, then `{` or anything else (text).
    Start,
    Body,
    /// After a call: whitespace, then `;` (another call) or the end.
    After,
    Text,
}

pub struct Llama3Json {
    buf: String,
    mode: Mode,
    /// Text since the last emitted call, given back if what follows is no call.
    raw: String,
    body: String,
    scan: JsonScan,
    next_index: usize,
}

impl Default for Llama3Json {
    fn default() -> Self {
        Llama3Json {
            buf: String::new(),
            mode: Mode::Start,
            raw: String::new(),
            body: String::new(),
            scan: JsonScan::new('{'),
            next_index: 0,
        }
    }
}

impl Llama3Json {
    fn fall_back_to_text(&mut self, out: &mut ParserDelta) {
        out.text.push_str(&std::mem::take(&mut self.raw));
        out.text.push_str(&std::mem::take(&mut self.buf));
        self.mode = Mode::Text;
    }

    /// Start mode on the buffer; false when it must wait for more text.
    fn start(&mut self, out: &mut ParserDelta) -> bool {
        let t = self.buf.trim_start();
        let ws = self.buf.len() - t.len();
        if t.is_empty() || (PYTHON_TAG.starts_with(t) && t.len() < PYTHON_TAG.len()) {
            return false;
        }
        if t.starts_with(PYTHON_TAG) {
            self.raw.extend(self.buf.drain(..ws + PYTHON_TAG.len()));
        } else if t.starts_with('{') {
            self.raw.extend(self.buf.drain(..ws));
            self.body.clear();
            self.scan = JsonScan::new('{');
            self.mode = Mode::Body;
        } else {
            self.fall_back_to_text(out);
        }
        true
    }

    /// One character of Body or After mode; true when the mode changed.
    fn step(&mut self, c: char, out: &mut ParserDelta) -> bool {
        self.raw.push(c);
        if self.mode == Mode::After {
            return match c {
                ';' => {
                    self.mode = Mode::Start;
                    true
                }
                c if c.is_whitespace() => false,
                _ => {
                    self.fall_back_to_text(out);
                    true
                }
            };
        }
        self.body.push(c);
        match self.scan.feed(c) {
            Step::More => false,
            Step::Bad => {
                self.fall_back_to_text(out);
                true
            }
            Step::Done => {
                let call = serde_json::from_str::<Value>(&self.body)
                    .ok()
                    .and_then(|v| call_from_value(&v, &["parameters", "arguments"]));
                match call {
                    Some(call) => {
                        out.call(self.next_index, call);
                        self.next_index += 1;
                        self.raw.clear();
                        self.mode = Mode::After;
                    }
                    None => self.fall_back_to_text(out),
                }
                true
            }
        }
    }
}

impl ToolParser for Llama3Json {
    fn push(&mut self, text: &str) -> ParserDelta {
        self.buf.push_str(text);
        let mut out = ParserDelta::default();
        loop {
            match self.mode {
                Mode::Text => {
                    out.text.push_str(&std::mem::take(&mut self.buf));
                    return out;
                }
                Mode::Start => {
                    if !self.start(&mut out) {
                        return out;
                    }
                }
                Mode::Body | Mode::After => {
                    let buf = std::mem::take(&mut self.buf);
                    let mut used = buf.len();
                    for (i, c) in buf.char_indices() {
                        if self.step(c, &mut out) {
                            used = i + c.len_utf8();
                            break;
                        }
                    }
                    // fall_back_to_text may have put the rest in `out` already.
                    if self.mode != Mode::Text {
                        self.buf = buf[used..].to_string();
                    } else {
                        out.text.push_str(&buf[used..]);
                    }
                    if self.buf.is_empty() {
                        return out;
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> ParserDelta {
        let mut out = ParserDelta::default();
        match self.mode {
            // Whitespace after the last call is not content.
            Mode::After => self.raw.clear(),
            Mode::Start if self.next_index > 0 && self.raw.trim() == ";" => self.raw.clear(),
            _ => self.fall_back_to_text(&mut out),
        }
        if self.mode != Mode::Text {
            self.fall_back_to_text(&mut out);
        }
        out
    }
}
