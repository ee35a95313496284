//! The machinery of formats that mark calls in running text: an opening marker, one
//! JSON value (object or array), and an optional closing marker (Hermes'
//! `<tool_call>...</tool_call>`, Mistral's `[TOOL_CALLS][...]`). Text outside the
//! markers is the answer's content.

use super::json_scan::{held_back, JsonScan, Step};
use super::{ParsedCall, ParserDelta, ToolParser};

/// Turns the JSON text between the markers into calls (`None`: not a valid call).
pub type ParseBody = fn(&str) -> Option<Vec<ParsedCall>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    Body,
    Close,
}

pub struct Wrapped {
    open: &'static str,
    open_char: char,
    close: Option<&'static str>,
    parse: ParseBody,
    /// Input not yet looked at (in text mode: a held-back marker prefix).
    buf: String,
    mode: Mode,
    /// The current call's text from its opening marker on, given back if it fails.
    raw: String,
    body: String,
    scan: JsonScan,
    close_seen: usize,
    next_index: usize,
    /// A value that opens the answer counts as a call without the marker (Mistral's
    /// `[TOOL_CALLS]` is a special token, which detokenized text leaves out).
    bare_start: bool,
    at_start: bool,
}

impl Wrapped {
    pub fn new(
        open: &'static str,
        open_char: char,
        close: Option<&'static str>,
        parse: ParseBody,
    ) -> Self {
        Wrapped {
            open,
            open_char,
            close,
            parse,
            buf: String::new(),
            mode: Mode::Text,
            raw: String::new(),
            body: String::new(),
            scan: JsonScan::new(open_char),
            close_seen: 0,
            next_index: 0,
            bare_start: false,
            at_start: true,
        }
    }

    /// Also takes a call value at the very start of the answer, without the marker.
    pub fn with_bare_start(mut self) -> Self {
        self.bare_start = true;
        self
    }

    fn start_call(&mut self) {
        self.mode = Mode::Body;
        self.raw = self.open.to_string();
        self.body.clear();
        self.scan = JsonScan::new(self.open_char);
        self.close_seen = 0;
    }

    /// Ends the current call: its calls if the body parses, else its text.
    fn complete(&mut self, out: &mut ParserDelta) {
        match (self.parse)(&self.body) {
            Some(calls) if !calls.is_empty() => {
                for c in calls {
                    out.call(self.next_index, c);
                    self.next_index += 1;
                }
            }
            _ => out.text.push_str(&self.raw),
        }
        self.fail_to_text(out, false);
    }

    fn fail_to_text(&mut self, out: &mut ParserDelta, give_back: bool) {
        if give_back {
            out.text.push_str(&self.raw);
        }
        self.raw.clear();
        self.body.clear();
        self.mode = Mode::Text;
    }

    /// One character inside a call; true when the call ended (either way).
    fn step(&mut self, c: char, out: &mut ParserDelta) -> bool {
        self.raw.push(c);
        match self.mode {
            Mode::Body => {
                if self.scan.started() || !c.is_whitespace() {
                    self.body.push(c);
                }
                match self.scan.feed(c) {
                    Step::More => false,
                    Step::Bad => {
                        self.fail_to_text(out, true);
                        true
                    }
                    Step::Done if self.close.is_none() => {
                        self.complete(out);
                        true
                    }
                    Step::Done => {
                        self.mode = Mode::Close;
                        false
                    }
                }
            }
            Mode::Close => {
                let close = self.close.unwrap_or_default();
                if self.close_seen == 0 && c.is_whitespace() {
                    return false;
                }
                let mut b = [0u8; 4];
                let cs = c.encode_utf8(&mut b);
                if close[self.close_seen..].starts_with(&*cs) {
                    self.close_seen += cs.len();
                    if self.close_seen == close.len() {
                        self.complete(out);
                        return true;
                    }
                    return false;
                }
                self.fail_to_text(out, true);
                true
            }
            Mode::Text => true,
        }
    }
}

impl ToolParser for Wrapped {
    /// Each byte is looked at once (held-back marker prefixes: a few times); the
    /// input is never re-copied, so adversarial text costs linear time.
    fn push(&mut self, text: &str) -> ParserDelta {
        let mut buf = std::mem::take(&mut self.buf);
        buf.push_str(text);
        let mut out = ParserDelta::default();
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            if self.mode == Mode::Text && self.at_start && self.bare_start {
                // Leading whitespace waits in `raw`: it is the call's (dropped) or text.
                let t = rest.trim_start();
                self.raw.push_str(&rest[..rest.len() - t.len()]);
                pos = buf.len() - t.len();
                if t.is_empty() {
                    break;
                }
                self.at_start = false;
                if t.starts_with(self.open_char) {
                    let lead = std::mem::take(&mut self.raw);
                    self.start_call();
                    self.raw = lead;
                } else {
                    out.text.push_str(&std::mem::take(&mut self.raw));
                }
                continue;
            }
            if self.mode == Mode::Text {
                self.at_start = false;
                match rest.find(self.open) {
                    Some(i) => {
                        out.text.push_str(&rest[..i]);
                        pos += i + self.open.len();
                        self.start_call();
                    }
                    None => {
                        let emit = rest.len() - held_back(rest, self.open);
                        out.text.push_str(&rest[..emit]);
                        pos += emit;
                        break;
                    }
                }
                continue;
            }
            let mut used = rest.len();
            for (i, c) in rest.char_indices() {
                if self.step(c, &mut out) {
                    used = i + c.len_utf8();
                    break;
                }
            }
            pos += used;
        }
        // What is left is a held-back marker prefix: a few bytes.
        self.buf = buf.split_off(pos);
        out
    }

    fn finish(&mut self) -> ParserDelta {
        let mut out = ParserDelta::default();
        match self.mode {
            Mode::Text => {
                out.text.push_str(&std::mem::take(&mut self.raw));
                out.text.push_str(&std::mem::take(&mut self.buf));
            }
            // The value is whole and only the closing marker is missing: a call.
            Mode::Close => self.complete(&mut out),
            Mode::Body => self.fail_to_text(&mut out, true),
        }
        out
    }
}
