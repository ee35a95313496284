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
    /// Everything held since the last call is text, and so is the rest.
    fn fall_back_to_text(&mut self, out: &mut ParserDelta) {
        out.text.push_str(&std::mem::take(&mut self.raw));
        self.mode = Mode::Text;
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
    /// Each byte is looked at once (a partial `<|python_tag|>`: a few times) and the
    /// input is never re-copied, so adversarial text costs linear time.
    fn push(&mut self, text: &str) -> ParserDelta {
        let mut buf = std::mem::take(&mut self.buf);
        buf.push_str(text);
        let mut out = ParserDelta::default();
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            match self.mode {
                Mode::Text => {
                    out.text.push_str(rest);
                    pos = buf.len();
                }
                Mode::Start => {
                    // Leading whitespace waits in `raw` (text unless a call follows).
                    let t = rest.trim_start();
                    self.raw.push_str(&rest[..rest.len() - t.len()]);
                    pos = buf.len() - t.len();
                    if t.is_empty() || (PYTHON_TAG.starts_with(t) && t.len() < PYTHON_TAG.len()) {
                        break;
                    }
                    if t.starts_with(PYTHON_TAG) {
                        self.raw.push_str(PYTHON_TAG);
                        pos += PYTHON_TAG.len();
                    } else if t.starts_with('{') {
                        self.body.clear();
                        self.scan = JsonScan::new('{');
                        self.mode = Mode::Body;
                    } else {
                        self.fall_back_to_text(&mut out);
                    }
                }
                Mode::Body | Mode::After => {
                    let mut used = rest.len();
                    for (i, c) in rest.char_indices() {
                        if self.step(c, &mut out) {
                            used = i + c.len_utf8();
                            break;
                        }
                    }
                    pos += used;
                }
            }
        }
        // What is left is a partial `<|python_tag|>`: a few bytes.
        self.buf = buf.split_off(pos);
        out
    }

    fn finish(&mut self) -> ParserDelta {
        // Whitespace (and a last `;`) after the calls is not content.
        let trailing = match self.mode {
            Mode::After => true,
            Mode::Start => {
                self.next_index > 0 && self.raw.trim() == ";" && self.buf.trim().is_empty()
            }
            _ => false,
        };
        if trailing {
            self.raw.clear();
            self.buf.clear();
        }
        let mut out = ParserDelta::default();
        self.fall_back_to_text(&mut out);
        out.text.push_str(&std::mem::take(&mut self.buf));
        out
    }
}
