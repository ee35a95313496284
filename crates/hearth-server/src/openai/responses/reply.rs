//! The `response` object, at any stage (in progress, completed, incomplete).

use hearth_engine::{FinishReason, Usage};
use serde_json::{json, Value};

/// What every rendering of one response shares.
pub struct ResponseShape {
    pub id: String,
    pub message_id: String,
    pub created_at: u64,
    pub model: String,
    /// Echoed request settings, as OpenAI returns them.
    pub instructions: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub temperature: f32,
    pub top_p: f32,
    pub previous_response_id: Option<String>,
    pub metadata: Value,
    pub text: Value,
    pub store: bool,
    /// The request's tools and choice, echoed.
    pub tools: Value,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
}

impl ResponseShape {
    /// The assistant message output item.
    pub fn message_item(&self, text: &str, done: bool) -> Value {
        let content = if done {
            json!([output_text(text)])
        } else {
            json!([])
        };
        json!({
            "id": self.message_id,
            "type": "message",
            "status": if done { "completed" } else { "in_progress" },
            "role": "assistant",
            "content": content,
        })
    }

    /// The response object with its output items; `finished` is None while it runs.
    pub fn object(&self, output: &[Value], finished: Option<(FinishReason, Usage)>) -> Value {
        let (status, incomplete, usage) = match finished {
            None => ("in_progress", Value::Null, Value::Null),
            Some((reason, usage)) if super::tools::incomplete(reason, output) => (
                "incomplete",
                json!({ "reason": "max_output_tokens" }),
                usage_json(usage),
            ),
            Some((_, usage)) => ("completed", Value::Null, usage_json(usage)),
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "reasoning": { "effort": null, "summary": null },
            "store": self.store,
            "temperature": self.temperature,
            "text": self.text,
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_p": self.top_p,
            "truncation": "disabled",
            "usage": usage,
            "user": null,
            "metadata": self.metadata,
        })
    }
}

pub fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

fn usage_json(u: Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": { "cached_tokens": u.cached_prompt_tokens },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}
