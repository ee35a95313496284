//! Tool-call parsers: find the calls a model writes in its own format and split them
//! from the answer's text, on streamed text (deltas) and on a whole answer alike.
//!
//! - `hermes`: Qwen 2.5/3 (and Hermes) `<tool_call>{"name": .., "arguments": {..}}</tool_call>`,
//!   several in a row for parallel calls.
//! - `llama3_json`: Llama 3.x, a JSON object `{"name": .., "parameters": {..}}` that starts
//!   the answer (after an optional `<|python_tag|>`), several separated by `;`.
//! - `mistral`: `[TOOL_CALLS][{"name": .., "arguments": {..}}, ...]`.
//!
//! No regex touches model text: a character-level scanner (`json_scan`) finds where a
//! JSON value ends, serde_json parses it, and every byte is looked at a bounded
//! number of times. A call that does not parse is given back as text. A call is
//! emitted once it is complete (name delta, then its arguments), so streamed and
//! whole parses agree exactly.

mod hermes;
pub mod json_scan;
mod llama3_json;
mod mistral;
#[cfg(test)]
mod tests;
mod wrapped;

use serde_json::Value;

use crate::error::{Result, TextError};
pub use hermes::Hermes;
pub use llama3_json::Llama3Json;
pub use mistral::Mistral;

/// A piece of one call, as OpenAI streams them: the first piece of a call has its
/// `name`, later ones carry `arguments` fragments (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Which call of the answer (0, 1, ... in order).
    pub index: usize,
    pub name: Option<String>,
    pub arguments: String,
}

/// What one push produced: answer text and call pieces (text comes first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParserDelta {
    pub text: String,
    pub calls: Vec<ToolCallDelta>,
}

impl ParserDelta {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.calls.is_empty()
    }

    fn extend(&mut self, other: ParserDelta) {
        self.text.push_str(&other.text);
        self.calls.extend(other.calls);
    }

    /// Emits a complete call as a name piece and an arguments piece.
    fn call(&mut self, index: usize, call: ParsedCall) {
        self.calls.push(ToolCallDelta {
            index,
            name: Some(call.name),
            arguments: String::new(),
        });
        self.calls.push(ToolCallDelta {
            index,
            name: None,
            arguments: call.arguments,
        });
    }
}

/// One complete call: the function's name and its arguments as compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    pub name: String,
    pub arguments: String,
}

/// A whole answer split into text and calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub content: String,
    pub calls: Vec<ParsedCall>,
}

/// An incremental parser for one answer.
pub trait ToolParser: Send {
    /// Feeds the next piece of generated text.
    fn push(&mut self, text: &str) -> ParserDelta;
    /// The answer ended: whatever is held back comes out (an unfinished call as text).
    fn finish(&mut self) -> ParserDelta;
}

/// Runs `parser` over a whole answer.
pub fn parse_whole(parser: &mut dyn ToolParser, text: &str) -> Parsed {
    let mut all = parser.push(text);
    all.extend(parser.finish());
    collect(all)
}

/// Folds deltas into text and whole calls.
pub fn collect(delta: ParserDelta) -> Parsed {
    let mut out = Parsed {
        content: delta.text,
        calls: Vec::new(),
    };
    for d in delta.calls {
        match d.name {
            Some(name) => out.calls.push(ParsedCall {
                name,
                arguments: d.arguments,
            }),
            None => {
                if let Some(last) = out.calls.last_mut() {
                    last.arguments.push_str(&d.arguments);
                }
            }
        }
    }
    out
}

/// A call object: `name` (a string) and its arguments under one of `arg_keys`
/// (an object, or a string holding JSON); `None` when it is anything else.
pub(crate) fn call_from_value(v: &Value, arg_keys: &[&str]) -> Option<ParsedCall> {
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str()?.to_string();
    if name.is_empty() {
        return None;
    }
    let args = arg_keys.iter().find_map(|k| obj.get(*k));
    let arguments = match args {
        None => "{}".to_string(),
        Some(Value::Object(_)) => args.map(Value::to_string)?,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v.to_string(),
            _ => return None,
        },
        Some(_) => return None,
    };
    Some(ParsedCall { name, arguments })
}

/// The parser families, by vLLM's `--tool-call-parser` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolParserKind {
    Hermes,
    Llama3Json,
    Mistral,
}

impl ToolParserKind {
    /// Every name `from_name` takes.
    pub const NAMES: [&'static str; 4] = ["hermes", "llama3_json", "mistral", "none"];

    /// A parser by name; `none` turns tool-call parsing off (`Ok(None)`).
    pub fn from_name(name: &str) -> Result<Option<Self>> {
        match name {
            "hermes" => Ok(Some(Self::Hermes)),
            "llama3_json" => Ok(Some(Self::Llama3Json)),
            "mistral" => Ok(Some(Self::Mistral)),
            "none" => Ok(None),
            other => Err(TextError::Unsupported(format!(
                "tool-call parser `{other}` (known: {})",
                Self::NAMES.join(", ")
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hermes => "hermes",
            Self::Llama3Json => "llama3_json",
            Self::Mistral => "mistral",
        }
    }

    pub fn new_parser(self) -> Box<dyn ToolParser> {
        match self {
            Self::Hermes => Box::new(Hermes::default()),
            Self::Llama3Json => Box::new(Llama3Json::default()),
            Self::Mistral => Box::new(Mistral::default()),
        }
    }

    /// The parser a model's chat template (and architecture) asks for: the wrapper
    /// its tool prompt teaches, else qwen2/qwen3 -> hermes, a Llama whose template
    /// takes tools -> llama3_json; `None` when nothing says.
    pub fn detect(architecture: Option<&str>, template: &str) -> Option<Self> {
        if template.contains("<tool_call>") {
            return Some(Self::Hermes);
        }
        if template.contains("[TOOL_CALLS]") {
            return Some(Self::Mistral);
        }
        let takes_tools = template.contains("tools");
        match architecture {
            Some("qwen2" | "qwen3") => Some(Self::Hermes),
            _ if takes_tools
                && (template.contains("<|python_tag|>") || template.contains("\"parameters\"")) =>
            {
                Some(Self::Llama3Json)
            }
            Some("llama") if takes_tools => Some(Self::Llama3Json),
            _ => None,
        }
    }
}
