//! `tools`, `tool_choice` and `parallel_tool_calls`, API-neutral once parsed (the
//! Anthropic side converts its tools into the same `ToolRequest`): validation, the
//! tool list a chat template gets, and the grammar that forces a call.

use hearth_text::tool_parsers::ToolParserKind;
use serde_json::{json, Value};

pub use super::tool_grammar::{forced_call, forced_call_grammar};
use super::tool_schema::check_schema;
use crate::error::ApiError;

/// What the client allows the model to do with its tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Never call (tools are still shown to the model, as vLLM does).
    None,
    Auto,
    /// At least one call, of any tool.
    Required,
    /// A call of this function.
    Named(String),
}

/// One function tool, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTool {
    pub name: String,
    /// The arguments' JSON schema (`{"type": "object"}` when none was given).
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    /// OpenAI-style tool objects for the chat template, as the client sent them.
    pub template_tools: Vec<Value>,
    pub functions: Vec<FunctionTool>,
    pub choice: ToolChoice,
    /// Several calls in one answer (else only the first is kept).
    pub parallel: bool,
}

impl ToolRequest {
    /// Whether the answer is searched for calls.
    pub fn parses(&self) -> bool {
        self.choice != ToolChoice::None
    }

    /// The tools a forced call may use (`required`: any; named: that one).
    pub fn forced(&self) -> Option<Vec<&FunctionTool>> {
        match &self.choice {
            ToolChoice::Required => Some(self.functions.iter().collect()),
            ToolChoice::Named(n) => Some(self.functions.iter().filter(|f| &f.name == n).collect()),
            _ => None,
        }
    }

    /// The checks that depend on the server: a call needs a parser to be found.
    pub fn parser(
        &self,
        parser: Option<ToolParserKind>,
    ) -> Result<Option<ToolParserKind>, ApiError> {
        match (self.parses(), parser) {
            (false, _) => Ok(None),
            (true, Some(p)) => Ok(Some(p)),
            (true, None) => Err(ApiError::invalid_param(
                "tool_choice",
                "tool calling needs a tool-call parser for this model: start the server with \
                 --tool-call-parser (hermes, llama3_json, mistral), or send tool_choice \"none\"",
            )),
        }
    }
}

/// Reads OpenAI's fields; `None` when the request has no tools.
pub fn from_openai(
    tools: Option<&[Value]>,
    choice: Option<&Value>,
    parallel: Option<bool>,
) -> Result<Option<ToolRequest>, ApiError> {
    let tools = tools.unwrap_or_default();
    let choice = match choice {
        None if tools.is_empty() => ToolChoice::None,
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!("tool_choice must be \"none\", \"auto\", \"required\" or a function, got \"{other}\""),
                ))
            }
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(n)) => ToolChoice::Named(n.to_string()),
                _ => {
                    return Err(ApiError::invalid_param(
                        "tool_choice",
                        "a named tool_choice is {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice must be a string or an object",
            ))
        }
    };
    let mut functions = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].type"),
                "only tools of type \"function\" are supported",
            ));
        }
        let f = t.get("function").unwrap_or(&Value::Null);
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        let param = format!("tools[{i}].function");
        functions.push(function_tool(
            &format!("{param}.name"),
            &format!("{param}.parameters"),
            name,
            f.get("parameters"),
        )?);
    }
    finish(tools.to_vec(), functions, choice, parallel.unwrap_or(true))
}

/// Checks the list as a whole and the choice against it.
pub fn finish(
    template_tools: Vec<Value>,
    functions: Vec<FunctionTool>,
    choice: ToolChoice,
    parallel: bool,
) -> Result<Option<ToolRequest>, ApiError> {
    for (i, f) in functions.iter().enumerate() {
        if functions[..i].iter().any(|g| g.name == f.name) {
            return Err(ApiError::invalid_param(
                "tools",
                format!("two tools are named `{}`", f.name),
            ));
        }
    }
    match &choice {
        ToolChoice::Required | ToolChoice::Named(_) if functions.is_empty() => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice asks for a call but the request has no tools",
            ))
        }
        ToolChoice::Named(n) if !functions.iter().any(|f| &f.name == n) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                format!("tool_choice names `{n}`, which is not one of the tools"),
            ))
        }
        _ => {}
    }
    if functions.is_empty() {
        return Ok(None);
    }
    Ok(Some(ToolRequest {
        template_tools,
        functions,
        choice,
        parallel,
    }))
}

/// A function's name (OpenAI's rule: 1-64 of `[A-Za-z0-9_-]`) and schema, checked;
/// errors name `name_param` / `schema_param` (each API's own field paths).
pub fn function_tool(
    name_param: &str,
    schema_param: &str,
    name: &str,
    parameters: Option<&Value>,
) -> Result<FunctionTool, ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(ApiError::invalid_param(
            name_param,
            format!("a tool name must be 1 to 64 letters, digits, '_' or '-', got {name:?}"),
        ));
    }
    let invalid =
        |msg: &str| ApiError::invalid_param(schema_param, format!("invalid JSON schema: {msg}"));
    let parameters = match parameters {
        None | Some(Value::Null) => json!({"type": "object"}),
        Some(p) => {
            if !p.is_object() {
                return Err(invalid("it must be a JSON schema object"));
            }
            if p.get("type").is_some_and(|t| t != "object") {
                return Err(invalid("it must have type \"object\""));
            }
            check_schema(p, 0).map_err(|e| invalid(&e))?;
            p.clone()
        }
    };
    Ok(FunctionTool {
        name: name.to_string(),
        parameters,
    })
}

/// A fresh call id in OpenAI's form.
pub fn call_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &hex[..24])
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
