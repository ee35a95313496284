//! Structured outputs: OpenAI's `response_format` and vLLM's `guided_*` extras (and
//! their newer `structured_outputs` object) turned into one `ConstraintSpec`.
//!
//! Fields are kept as raw JSON so that a wrong type is a 400 naming the field, and at
//! most one of them may ask for a constraint.

use hearth_text::ConstraintSpec;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// The structured-output fields of a chat or completions request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct StructuredFields {
    pub response_format: Option<Value>,
    pub guided_json: Option<Value>,
    pub guided_regex: Option<Value>,
    pub guided_choice: Option<Value>,
    pub guided_grammar: Option<Value>,
    pub structured_outputs: Option<Value>,
}

/// A constraint and the request field it came from (named in compile errors).
pub type FieldConstraint = (ConstraintSpec, &'static str);

impl StructuredFields {
    /// The constraint the request asks for, if any.
    pub fn constraint(&self) -> Result<Option<FieldConstraint>, ApiError> {
        let mut found: Option<FieldConstraint> = None;
        let mut add = |spec: Option<ConstraintSpec>, param: &'static str| {
            match (spec, &found) {
            (None, _) => Ok(()),
            (Some(_), Some((_, first))) => Err(ApiError::invalid_param(
                param,
                format!("{param} cannot be combined with {first}: give one structured-output constraint"),
            )),
            (Some(spec), None) => {
                found = Some((spec, param));
                Ok(())
            }
        }
        };
        if let Some(v) = &self.response_format {
            add(response_format(v)?, "response_format")?;
        }
        let fields = [
            (&self.guided_json, "guided_json"),
            (&self.guided_regex, "guided_regex"),
            (&self.guided_choice, "guided_choice"),
            (&self.guided_grammar, "guided_grammar"),
        ];
        for (v, param) in fields {
            if let Some(v) = v {
                add(Some(guided(param, v)?), param)?;
            }
        }
        if let Some(v) = &self.structured_outputs {
            add(structured_outputs(v)?, "structured_outputs")?;
        }
        Ok(found)
    }
}

/// `{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}`.
fn response_format(v: &Value) -> Result<Option<ConstraintSpec>, ApiError> {
    const P: &str = "response_format";
    let obj = v
        .as_object()
        .ok_or_else(|| bad(P, "response_format must be an object"))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(P, "response_format.type must be a string"))?;
    match kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(ConstraintSpec::JsonObject)),
        "json_schema" => {
            json_schema(obj.get("json_schema"), "response_format.json_schema", P).map(Some)
        }
        other => Err(bad(
            P,
            format!(
                "response_format.type `{other}` is not supported (text, json_object, json_schema)"
            ),
        )),
    }
}

/// `{"name": .., "schema": {..}, "strict": bool, "description": ..}`; `at` is where
/// these keys sit in the request (for messages), `param` the field named in errors.
fn json_schema(
    v: Option<&Value>,
    at: &str,
    param: &'static str,
) -> Result<ConstraintSpec, ApiError> {
    let obj = v.and_then(Value::as_object).ok_or_else(|| {
        bad(
            param,
            format!("{at} must be an object when type is json_schema"),
        )
    })?;
    if obj.get("name").is_some_and(|n| !n.is_string()) {
        return Err(bad(param, format!("{at}.name must be a string")));
    }
    let strict = match obj.get("strict") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(param, format!("{at}.strict must be a boolean"))),
    };
    match obj.get("schema") {
        // No schema: any JSON object, as json_object.
        None | Some(Value::Null) => Ok(ConstraintSpec::JsonObject),
        Some(schema @ Value::Object(_)) => Ok(ConstraintSpec::JsonSchema {
            schema: schema.clone(),
            strict,
        }),
        Some(_) => Err(bad(param, format!("{at}.schema must be an object"))),
    }
}

/// The Responses API's `text: {"format": {"type": .., "name", "schema", "strict"}}`
/// (the json_schema keys sit on the format itself).
pub fn responses_text_format(text: Option<&Value>) -> Result<Option<FieldConstraint>, ApiError> {
    const P: &str = "text";
    let Some(text) = text.filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    let obj = text
        .as_object()
        .ok_or_else(|| bad(P, "text must be an object"))?;
    let Some(format) = obj.get("format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let kind = format
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(P, "text.format.type must be a string"))?;
    let spec = match kind {
        "text" => return Ok(None),
        "json_object" => ConstraintSpec::JsonObject,
        "json_schema" => json_schema(Some(format), "text.format", P)?,
        other => {
            return Err(bad(
                P,
                format!(
                    "text.format.type `{other}` is not supported (text, json_object, json_schema)"
                ),
            ))
        }
    };
    Ok(Some((spec, P)))
}

/// One of vLLM's `guided_*` fields (also the keys of `structured_outputs`).
fn guided(param: &'static str, v: &Value) -> Result<ConstraintSpec, ApiError> {
    match (param, v) {
        ("guided_json", Value::Object(_) | Value::Bool(_)) => Ok(ConstraintSpec::JsonSchema {
            schema: v.clone(),
            strict: false,
        }),
        // vLLM also takes the schema as a JSON string.
        ("guided_json", Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(schema @ Value::Object(_)) => Ok(ConstraintSpec::JsonSchema {
                schema,
                strict: false,
            }),
            _ => Err(bad(param, "guided_json must be a JSON schema (an object)")),
        },
        ("guided_json", _) => Err(bad(param, "guided_json must be a JSON schema (an object)")),
        ("guided_regex", Value::String(s)) => Ok(ConstraintSpec::Regex(s.clone())),
        ("guided_grammar", Value::String(s)) => Ok(ConstraintSpec::Lark(s.clone())),
        ("guided_choice", Value::Array(items)) => {
            let choices: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect();
            match choices {
                Some(c) if !c.is_empty() => Ok(ConstraintSpec::Choice(c)),
                _ => Err(bad(
                    param,
                    "guided_choice must be a non-empty list of strings",
                )),
            }
        }
        ("guided_choice", _) => Err(bad(
            param,
            "guided_choice must be a non-empty list of strings",
        )),
        _ => Err(bad(param, format!("{param} must be a string"))),
    }
}

/// vLLM's `structured_outputs: {"json" | "regex" | "choice" | "grammar": ..}`.
fn structured_outputs(v: &Value) -> Result<Option<ConstraintSpec>, ApiError> {
    const P: &str = "structured_outputs";
    let obj = v
        .as_object()
        .ok_or_else(|| bad(P, "structured_outputs must be an object"))?;
    let keys = [
        ("json", "guided_json"),
        ("regex", "guided_regex"),
        ("choice", "guided_choice"),
        ("grammar", "guided_grammar"),
    ];
    let mut found = None;
    for (key, as_guided) in keys {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(_) if found.is_some() => {
                return Err(bad(P, "structured_outputs may hold only one constraint"))
            }
            Some(v) => {
                found = Some(
                    guided(as_guided, v)
                        .map_err(|e| bad(P, format!("structured_outputs.{key}: {}", e.message)))?,
                )
            }
        }
    }
    if obj.get("json_object").and_then(Value::as_bool) == Some(true) {
        if found.is_some() {
            return Err(bad(P, "structured_outputs may hold only one constraint"));
        }
        found = Some(ConstraintSpec::JsonObject);
    }
    Ok(found)
}

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid_param(param, msg)
}

#[cfg(test)]
#[path = "structured_tests.rs"]
mod tests;
