//! `tools`, `tool_choice` and `parallel_tool_calls`, API-neutral once parsed (the
//! Anthropic side converts its tools into the same `ToolRequest`): validation, the
//! tool list a chat template gets, and the grammar that forces a call.

use hearth_text::tool_parsers::ToolParserKind;
use hearth_text::ConstraintSpec;
use serde_json::{json, Map, Value};

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

const TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// The structure a JSON schema must have (what llguidance would trip on later).
fn check_schema(v: &Value, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err("nested too deeply".into());
    }
    let m = match v {
        Value::Bool(_) => return Ok(()),
        Value::Object(m) => m,
        _ => return Err(format!("a schema must be an object or a boolean, got {v}")),
    };
    let known = |t: &Value| t.as_str().is_some_and(|s| TYPES.contains(&s));
    match m.get("type") {
        None => {}
        Some(Value::Array(ts)) if ts.iter().all(known) => {}
        Some(t) if known(t) => {}
        Some(t) => return Err(format!("unknown type {t}")),
    }
    if let Some(p) = m.get("properties") {
        let props = p.as_object().ok_or("properties must be an object")?;
        for s in props.values() {
            check_schema(s, depth + 1)?;
        }
    }
    if let Some(r) = m.get("required") {
        let ok = r.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err("required must be a list of strings".into());
        }
    }
    if let Some(e) = m.get("enum") {
        if !e.is_array() {
            return Err("enum must be a list".into());
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        match m.get(key) {
            Some(Value::Array(a)) if key == "items" => {
                a.iter().try_for_each(|s| check_schema(s, depth + 1))?
            }
            Some(s) => check_schema(s, depth + 1)?,
            None => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = m.get(key) {
            let list = list.as_array().ok_or(format!("{key} must be a list"))?;
            list.iter().try_for_each(|s| check_schema(s, depth + 1))?;
        }
    }
    Ok(())
}

/// The constraint of a request whose tool_choice forces a call (`required` or a
/// named function) on a server that can parse calls.
pub fn forced_call(
    tools: Option<&ToolRequest>,
    parser: Option<ToolParserKind>,
) -> Option<ConstraintSpec> {
    let kind = parser?;
    let forced = tools?.forced()?;
    Some(forced_call_grammar(kind, &forced))
}

/// A Lark grammar for exactly one call of one of `tools`, written in the parser
/// family's own wrapper, the arguments held to the tool's schema (llguidance's
/// `%json`), compact like the model's template shows calls.
pub fn forced_call_grammar(kind: ToolParserKind, tools: &[&FunctionTool]) -> ConstraintSpec {
    let mut lark = String::from("start: ");
    let alts: Vec<String> = (0..tools.len()).map(|i| format!("call_{i}")).collect();
    lark.push_str(&alts.join(" | "));
    lark.push('\n');
    for (i, t) in tools.iter().enumerate() {
        let (before, after) = match kind {
            ToolParserKind::Hermes => (
                format!("<tool_call>\n{{\"name\": \"{}\", \"arguments\": ", t.name),
                "}\n</tool_call>",
            ),
            ToolParserKind::Llama3Json => {
                (format!("{{\"name\": \"{}\", \"parameters\": ", t.name), "}")
            }
            ToolParserKind::Mistral => (
                format!("[TOOL_CALLS][{{\"name\": \"{}\", \"arguments\": ", t.name),
                "}]",
            ),
        };
        let quote = |s: &str| Value::String(s.to_string()).to_string();
        lark.push_str(&format!(
            "call_{i}: {} args_{i} {}\n",
            quote(&before),
            quote(after)
        ));
        lark.push_str(&format!(
            "args_{i}: %json {}\n",
            guided_schema(&t.parameters)
        ));
    }
    ConstraintSpec::Lark(lark)
}

/// The schema with llguidance's layout options: no free whitespace (a small model
/// cannot wander into newlines), `, ` and `: ` as Python's json.dumps writes them.
fn guided_schema(schema: &Value) -> Value {
    let mut s = match schema {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    s.entry("x-guidance").or_insert_with(|| {
        json!({
            "whitespace_flexible": false,
            "item_separator": ", ",
            "key_separator": ": ",
            "lenient": true,
        })
    });
    Value::Object(s)
}

/// A fresh call id in OpenAI's form.
pub fn call_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &hex[..24])
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
