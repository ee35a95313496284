//! Hermes / Qwen 2.5 / Qwen 3: `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`,
//! as those models' chat templates teach it; several blocks are parallel calls.

use serde_json::Value;

use super::wrapped::Wrapped;
use super::{call_from_value, ParsedCall, ParserDelta, ToolParser};

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

pub struct Hermes(Wrapped);

impl Default for Hermes {
    fn default() -> Self {
        Hermes(Wrapped::new(OPEN, '{', Some(CLOSE), parse))
    }
}

fn parse(body: &str) -> Option<Vec<ParsedCall>> {
    let v: Value = serde_json::from_str(body).ok()?;
    call_from_value(&v, &["arguments", "parameters"]).map(|c| vec![c])
}

impl ToolParser for Hermes {
    fn push(&mut self, text: &str) -> ParserDelta {
        self.0.push(text)
    }

    fn finish(&mut self) -> ParserDelta {
        self.0.finish()
    }
}
