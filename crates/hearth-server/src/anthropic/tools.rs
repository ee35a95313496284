//! Anthropic `tools` / `tool_choice` -> the shared `ToolRequest` (the template sees
//! them as OpenAI-style function tools, as with every other client), and the
//! `tool_use` blocks of an answer.

use hearth_text::tool_parsers::{parse_whole, ParsedCall, ToolParserKind};
use serde_json::{json, Value};

use super::error::AnthropicError;
use crate::openai::tools::{finish, function_tool, ToolChoice, ToolRequest};

/// Reads `tools` and `tool_choice`; `None` when there are no tools.
pub fn from_anthropic(
    tools: Option<&[Value]>,
    choice: Option<&Value>,
) -> Result<Option<ToolRequest>, AnthropicError> {
    let tools = tools.unwrap_or_default();
    let kind = choice.map(|c| c.get("type").and_then(Value::as_str));
    let choice_kind = match kind {
        None => "auto",
        Some(Some(k)) => k,
        Some(None) => return Err(AnthropicError::invalid("tool_choice.type: field required")),
    };
    let parallel = !choice
        .and_then(|c| c.get("disable_parallel_tool_use"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let choice = match choice_kind {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => match choice.and_then(|c| c.get("name")).and_then(Value::as_str) {
            Some(n) => ToolChoice::Named(n.to_string()),
            None => return Err(AnthropicError::invalid("tool_choice.name: field required")),
        },
        other => {
            return Err(AnthropicError::invalid(format!(
                "tool_choice.type: must be \"auto\", \"any\", \"tool\" or \"none\", got \"{other}\""
            )))
        }
    };
    let mut functions = Vec::with_capacity(tools.len());
    let mut template_tools = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(other) => {
                return Err(AnthropicError::invalid(format!(
                    "tools.{i}.type: server tools (\"{other}\") are not supported; define a custom tool"
                )))
            }
        }
        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
        let schema = t.get("input_schema");
        if schema.is_none() {
            return Err(AnthropicError::invalid(format!(
                "tools.{i}.input_schema: field required"
            )));
        }
        let f = function_tool(
            &format!("tools.{i}.name"),
            &format!("tools.{i}.input_schema"),
            name,
            schema,
        )?;
        let mut function = json!({ "name": f.name });
        if let Some(d) = t.get("description") {
            function["description"] = d.clone();
        }
        function["parameters"] = f.parameters.clone();
        template_tools.push(json!({ "type": "function", "function": function }));
        functions.push(f);
    }
    Ok(finish(template_tools, functions, choice, parallel)?)
}

/// A fresh `tool_use` id in Anthropic's form.
pub fn tool_use_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("toolu_{}", &hex[..24])
}

/// A `tool_use` block; the arguments are a JSON object by construction.
pub fn tool_use_block(call: &ParsedCall) -> Value {
    let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
    json!({ "type": "tool_use", "id": tool_use_id(), "name": call.name, "input": input })
}

/// A whole answer's content blocks: its text (if any) then one `tool_use` per call;
/// with calls, whitespace at the end of the text is dropped (as when streaming).
pub fn answer_blocks(text: &str, kind: ToolParserKind, parallel: bool) -> (Vec<Value>, usize) {
    let mut parsed = parse_whole(kind.new_parser().as_mut(), text);
    if !parallel {
        parsed.calls.truncate(1);
    }
    let content = if parsed.calls.is_empty() {
        parsed.content.as_str()
    } else {
        parsed.content.trim_end()
    };
    let mut blocks = Vec::new();
    if !content.is_empty() || parsed.calls.is_empty() {
        blocks.push(json!({ "type": "text", "text": content }));
    }
    blocks.extend(parsed.calls.iter().map(tool_use_block));
    (blocks, parsed.calls.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Value> {
        vec![json!({"name": "get_weather", "description": "d",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})]
    }

    #[test]
    fn tools_and_choices_convert() {
        let t = from_anthropic(Some(&tools()), None).unwrap().unwrap();
        assert_eq!(t.choice, ToolChoice::Auto);
        assert_eq!(
            t.template_tools[0],
            json!({"type": "function", "function": {"name": "get_weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
        );
        for (c, want) in [
            (json!({"type": "any"}), ToolChoice::Required),
            (json!({"type": "none"}), ToolChoice::None),
            (
                json!({"type": "tool", "name": "get_weather"}),
                ToolChoice::Named("get_weather".into()),
            ),
        ] {
            assert_eq!(
                from_anthropic(Some(&tools()), Some(&c))
                    .unwrap()
                    .unwrap()
                    .choice,
                want
            );
        }
        let c = json!({"type": "auto", "disable_parallel_tool_use": true});
        assert!(
            !from_anthropic(Some(&tools()), Some(&c))
                .unwrap()
                .unwrap()
                .parallel
        );
        for (tools, choice, field) in [
            (
                tools(),
                json!({"type": "tool", "name": "other"}),
                "tool_choice",
            ),
            (tools(), json!({"type": "tool"}), "tool_choice.name"),
            (tools(), json!({"type": "sometimes"}), "tool_choice.type"),
            (
                vec![json!({"name": "x"})],
                json!({"type": "auto"}),
                "tools.0.input_schema",
            ),
            (
                vec![json!({"type": "bash_20250124", "name": "bash"})],
                json!({"type": "auto"}),
                "tools.0.type",
            ),
            (
                vec![json!({"name": "x", "input_schema": {"type": "object", "properties": 3}})],
                json!({"type": "auto"}),
                "tools.0.input_schema",
            ),
            (
                vec![json!({"name": "a b", "input_schema": {}})],
                json!({"type": "auto"}),
                "tools.0.name",
            ),
        ] {
            let e = from_anthropic(Some(&tools), Some(&choice)).unwrap_err();
            assert_eq!((e.status.as_u16(), e.kind), (400, "invalid_request_error"));
            assert!(e.message.starts_with(field), "{}", e.message);
        }
    }

    #[test]
    fn answers_become_text_and_tool_use_blocks() {
        let text = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
        let (blocks, calls) = answer_blocks(text, ToolParserKind::Hermes, true);
        assert_eq!(calls, 1);
        assert_eq!(blocks[0], json!({"type": "text", "text": "Let me look."}));
        assert_eq!(blocks[1]["type"], "tool_use");
        assert!(blocks[1]["id"].as_str().unwrap().starts_with("toolu_"));
        assert_eq!(blocks[1]["input"], json!({"city": "Oslo"}));
        let (blocks, calls) = answer_blocks("just text", ToolParserKind::Hermes, true);
        assert_eq!(
            (calls, blocks),
            (0, vec![json!({"type": "text", "text": "just text"})])
        );
    }
}
