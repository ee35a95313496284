//! Mistral (v3 tokenizer models): `[TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]`.
//! Text before the marker is content; the array holds every call of the turn. The
//! marker is a special token that detokenized text usually leaves out, so an array
//! that opens the answer is read as calls too (and given back as text if it is none).

use serde_json::Value;

use super::wrapped::Wrapped;
use super::{call_from_value, ParsedCall, ParserDelta, ToolParser};

pub const OPEN: &str = "[TOOL_CALLS]";

pub struct Mistral(Wrapped);

impl Default for Mistral {
    fn default() -> Self {
        Mistral(Wrapped::new(OPEN, '[', None, parse).with_bare_start())
    }
}

fn parse(body: &str) -> Option<Vec<ParsedCall>> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.as_array()?
        .iter()
        .map(|c| call_from_value(c, &["arguments", "parameters"]))
        .collect()
}

impl ToolParser for Mistral {
    fn push(&mut self, text: &str) -> ParserDelta {
        self.0.push(text)
    }

    fn finish(&mut self) -> ParserDelta {
        self.0.finish()
    }
}
