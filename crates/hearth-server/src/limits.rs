//! Per-request limits an operator sets (`serve --max-prompt-tokens` etc.): each
//! refusal is a 400 naming the field, in the API's own shape (handlers convert).
//!
//! `max_tools`, `max_schema_bytes` and `max_schema_depth` are checked by the code
//! that reads tools and JSON schemas (`check_tools`, `check_schema`).

use hearth_engine::SamplingParams;
use serde_json::Value;

use crate::error::ApiError;
use crate::openai::tools::ToolRequest;
use crate::openai::types::SamplingFields;

#[derive(Debug, Clone, PartialEq)]
pub struct RequestLimits {
    /// Longest prompt in tokens (after the chat template); `None`: the context decides.
    pub max_prompt_tokens: Option<usize>,
    /// Largest `max_tokens` a request may ask for; also caps the default.
    pub max_output_tokens: Option<usize>,
    /// Most choices (`n`) per request.
    pub max_n: usize,
    /// Most tools (function definitions) in one request.
    pub max_tools: usize,
    /// Largest JSON schema (tool parameters, response_format) in bytes, as JSON text.
    pub max_schema_bytes: usize,
    /// Deepest nesting of arrays/objects in one schema.
    pub max_schema_depth: usize,
}

pub const DEFAULT_MAX_N: usize = 16;
pub const DEFAULT_MAX_TOOLS: usize = 128;
pub const DEFAULT_MAX_SCHEMA_BYTES: usize = 64 << 10;
pub const DEFAULT_MAX_SCHEMA_DEPTH: usize = 32;

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_prompt_tokens: None,
            max_output_tokens: None,
            max_n: DEFAULT_MAX_N,
            max_tools: DEFAULT_MAX_TOOLS,
            max_schema_bytes: DEFAULT_MAX_SCHEMA_BYTES,
            max_schema_depth: DEFAULT_MAX_SCHEMA_DEPTH,
        }
    }
}

impl RequestLimits {
    pub fn check_prompt(&self, prompt_tokens: usize) -> Result<(), ApiError> {
        match self.max_prompt_tokens {
            Some(max) if prompt_tokens > max => Err(ApiError {
                code: Some("prompt_too_long".into()),
                ..ApiError::invalid_param(
                    "messages",
                    format!(
                        "the prompt has {prompt_tokens} tokens; this server accepts at most {max}"
                    ),
                )
            }),
            _ => Ok(()),
        }
    }

    /// A requested `max_tokens` (under the name the request used).
    pub fn check_output(&self, param: &str, max_tokens: usize) -> Result<(), ApiError> {
        match self.max_output_tokens {
            Some(max) if max_tokens > max => Err(ApiError::invalid_param(
                param,
                format!("{param} is {max_tokens}; this server allows at most {max}"),
            )),
            _ => Ok(()),
        }
    }

    /// The output length used when the request sets none.
    pub fn default_output(&self, rest_of_context: usize) -> usize {
        self.max_output_tokens
            .map_or(rest_of_context, |m| rest_of_context.min(m))
    }

    /// `params.max_tokens` against the cap: refused when the request set it (under
    /// the name `param`), lowered when it is the default (the rest of the context).
    pub fn cap_output(
        &self,
        param: Option<&str>,
        mut params: SamplingParams,
    ) -> Result<SamplingParams, ApiError> {
        match param {
            Some(name) => self.check_output(name, params.max_tokens)?,
            None => params.max_tokens = self.default_output(params.max_tokens),
        }
        Ok(params)
    }

    pub fn check_n(&self, n: i64) -> Result<(), ApiError> {
        if n > self.max_n as i64 {
            return Err(ApiError::invalid_param(
                "n",
                format!("n is {n}; this server allows at most {}", self.max_n),
            ));
        }
        Ok(())
    }

    pub fn check_tools(&self, count: usize) -> Result<(), ApiError> {
        if count > self.max_tools {
            return Err(ApiError::invalid_param(
                "tools",
                format!(
                    "{count} tools; this server allows at most {}",
                    self.max_tools
                ),
            ));
        }
        Ok(())
    }

    /// The tool count and every tool's parameter schema.
    pub fn check_tool_request(&self, tools: &ToolRequest) -> Result<(), ApiError> {
        self.check_tools(tools.functions.len())?;
        for f in &tools.functions {
            self.check_schema("tools", &f.parameters)?;
        }
        Ok(())
    }

    /// Size (as compact JSON) and nesting of one schema; `param` names where it was.
    pub fn check_schema(&self, param: &str, schema: &Value) -> Result<(), ApiError> {
        let depth = depth(schema);
        if depth > self.max_schema_depth {
            return Err(ApiError::invalid_param(
                param,
                format!(
                    "the schema nests {depth} levels; this server allows at most {}",
                    self.max_schema_depth
                ),
            ));
        }
        let bytes = serde_json::to_vec(schema)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if bytes > self.max_schema_bytes {
            return Err(ApiError::invalid_param(
                param,
                format!(
                    "the schema is {bytes} bytes; this server allows at most {}",
                    self.max_schema_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The name under which an OpenAI request set its output length, if it did.
pub fn output_param(f: &SamplingFields) -> Option<&'static str> {
    match (f.max_completion_tokens, f.max_tokens) {
        (Some(_), _) => Some("max_completion_tokens"),
        (None, Some(_)) => Some("max_tokens"),
        (None, None) => None,
    }
}

/// Nesting depth without recursion (a hostile schema may be deep).
fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        max = max.max(d);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits() {
        let l = RequestLimits {
            max_prompt_tokens: Some(10),
            max_output_tokens: Some(5),
            max_n: 2,
            max_tools: 1,
            max_schema_bytes: 30,
            max_schema_depth: 2,
        };
        assert!(l.check_prompt(10).is_ok());
        let e = l.check_prompt(11).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.param.as_deref()),
            (400, Some("messages"))
        );
        assert!(l.check_output("max_tokens", 5).is_ok());
        assert_eq!(
            l.check_output("max_tokens", 6)
                .unwrap_err()
                .param
                .as_deref(),
            Some("max_tokens")
        );
        assert_eq!((l.default_output(100), l.default_output(3)), (5, 3));
        assert!(l.check_n(2).is_ok() && l.check_n(3).is_err());
        assert!(l.check_tools(1).is_ok() && l.check_tools(2).is_err());
        assert!(l.check_schema("tools", &json!({"type": "object"})).is_ok());
        assert!(l.check_schema("tools", &json!({"a": {"b": {}}})).is_err());
        assert!(l
            .check_schema("tools", &json!({"description": "x".repeat(40)}))
            .is_err());
        assert_eq!(RequestLimits::default().default_output(7), 7);
        let p = |m| SamplingParams {
            max_tokens: m,
            ..SamplingParams::default()
        };
        assert_eq!(l.cap_output(None, p(100)).unwrap().max_tokens, 5);
        assert_eq!(
            l.cap_output(Some("max_tokens"), p(4)).unwrap().max_tokens,
            4
        );
        assert!(l.cap_output(Some("max_completion_tokens"), p(6)).is_err());
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [[1]]})), 3);
        let mut deep = json!(0);
        for _ in 0..1_000 {
            deep = json!([deep]);
        }
        assert_eq!(depth(&deep), 1_000);
    }
}
