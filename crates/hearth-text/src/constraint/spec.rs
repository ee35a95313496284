//! What a request asks its output to match, and its llguidance grammar.

use llguidance::api::TopLevelGrammar;
use serde_json::{json, Value};

use crate::error::{Result, TextError};

/// A structured-output request, independent of any API's JSON shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintSpec {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    /// JSON matching `schema`. `strict` refuses schema keywords llguidance cannot
    /// enforce; without it they are ignored (and the output may not satisfy them).
    JsonSchema { schema: Value, strict: bool },
    /// Text matching a regular expression (Rust `regex` syntax), anchored at both ends.
    Regex(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
    /// A grammar in llguidance's Lark dialect (`%json{...}` embeds a JSON schema).
    Lark(String),
}

impl ConstraintSpec {
    /// The llguidance grammar; rejects what can be rejected without the vocabulary.
    pub(crate) fn to_grammar(&self) -> Result<TopLevelGrammar> {
        match self {
            ConstraintSpec::JsonObject => Ok(json_grammar(json!({"type": "object"}), true)),
            ConstraintSpec::JsonSchema { schema, strict } => {
                if !(schema.is_object() || schema.is_boolean()) {
                    return Err(invalid("a JSON schema must be an object or a boolean"));
                }
                Ok(json_grammar(schema.clone(), *strict))
            }
            ConstraintSpec::Regex(rx) => {
                // Parse first: llguidance's own errors for bad regexes are less direct.
                regex_syntax::Parser::new()
                    .parse(rx)
                    .map_err(|e| invalid(format!("invalid regex: {e}")))?;
                Ok(TopLevelGrammar::from_regex(rx))
            }
            ConstraintSpec::Choice(choices) => {
                if choices.is_empty() {
                    return Err(invalid("a choice needs at least one option"));
                }
                Ok(TopLevelGrammar::from_lark(choice_lark(choices)))
            }
            ConstraintSpec::Lark(src) => {
                if src.trim().is_empty() {
                    return Err(invalid("the grammar is empty"));
                }
                Ok(TopLevelGrammar::from_lark(src.clone()))
            }
        }
    }
}

/// Compact JSON (no free whitespace): a small model cannot wander into endless
/// newlines, and the output is still valid JSON. A schema's own `x-guidance` wins.
fn json_grammar(mut schema: Value, strict: bool) -> TopLevelGrammar {
    if let Value::Object(map) = &mut schema {
        map.entry("x-guidance").or_insert_with(|| {
            json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
                "lenient": !strict,
            })
        });
    }
    TopLevelGrammar::from_json_schema(schema)
}

/// `start: "a" | "b"`: Lark string literals are JSON strings, so serde_json quotes them.
fn choice_lark(choices: &[String]) -> String {
    let alts: Vec<String> = choices
        .iter()
        .map(|c| Value::String(c.clone()).to_string())
        .collect();
    format!("start: {}\n", alts.join(" | "))
}

fn invalid(msg: impl Into<String>) -> TextError {
    TextError::Constraint(msg.into())
}
