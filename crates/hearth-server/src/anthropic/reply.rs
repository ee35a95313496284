//! The `message` object a Messages request answers with, and its stop reason.

use std::sync::Arc;

use hearth_engine::{FinishReason, Usage};
use hearth_text::tool_parsers::ToolParserKind;
use hearth_text::Tokenizer;

use super::tools::answer_blocks;
use serde_json::{json, Value};

/// What the reply needs to know about its request.
pub struct Reply {
    pub id: String,
    pub model: String,
    pub input_tokens: usize,
    /// The stop sequences the engine was given.
    pub stops: Vec<String>,
    pub tokenizer: Arc<Tokenizer>,
    /// The parser (and whether parallel calls are kept) when the answer is read
    /// for tool calls.
    pub tools: Option<(ToolParserKind, bool)>,
}

impl Reply {
    pub fn new(
        model: String,
        input_tokens: usize,
        stops: Vec<String>,
        tokenizer: Arc<Tokenizer>,
    ) -> Self {
        Reply {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            model,
            input_tokens,
            stops,
            tokenizer,
            tools: None,
        }
    }

    /// `stop_reason` and `stop_sequence`. The engine only says it stopped; which stop
    /// sequence (if any) did it is found in the decoded tokens, which still hold it.
    pub fn stop_reason(
        &self,
        finish: FinishReason,
        token_ids: &[u32],
    ) -> (&'static str, Option<String>) {
        match finish {
            FinishReason::Length => ("max_tokens", None),
            FinishReason::Stop if !self.stops.is_empty() => {
                let text = self.tokenizer.decode(token_ids, true).unwrap_or_default();
                match matched_stop(&text, &self.stops) {
                    Some(s) => ("stop_sequence", Some(s.to_string())),
                    None => ("end_turn", None),
                }
            }
            FinishReason::Stop | FinishReason::Abort => ("end_turn", None),
        }
    }

    /// The whole `message`; streaming starts with it empty.
    pub fn message(
        &self,
        content: Value,
        stop: (Option<&str>, Option<String>),
        output_tokens: usize,
    ) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop.0,
            "stop_sequence": stop.1,
            "usage": { "input_tokens": self.input_tokens, "output_tokens": output_tokens },
        })
    }

    pub fn finished(
        &self,
        text: &str,
        finish: FinishReason,
        token_ids: &[u32],
        usage: Usage,
    ) -> Value {
        let (mut reason, mut seq) = self.stop_reason(finish, token_ids);
        let content = match self.tools {
            Some((kind, parallel)) => {
                let (blocks, calls) = answer_blocks(text, kind, parallel);
                if calls > 0 && finish == FinishReason::Stop {
                    (reason, seq) = ("tool_use", None);
                }
                json!(blocks)
            }
            None => json!([{ "type": "text", "text": text }]),
        };
        self.message(content, (Some(reason), seq), usage.completion_tokens)
    }
}

/// The stop sequence the engine matched: it cuts at the earliest match in the text,
/// so that is the one starting first (the shorter on a tie, which completes first).
pub fn matched_stop<'a>(generated: &str, stops: &'a [String]) -> Option<&'a str> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            generated
                .find(s.as_str())
                .map(|at| (at, s.len(), s.as_str()))
        })
        .min()
        .map(|(_, _, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_stop_wins() {
        let stops: Vec<String> = ["world", "lo", "hello w"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(matched_stop("say hello world", &stops), Some("hello w"));
        assert_eq!(matched_stop("abc lo world", &stops), Some("lo"));
        assert_eq!(matched_stop("nothing here", &stops), None);
        let tie: Vec<String> = ["ab", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(matched_stop("xaby", &tie), Some("a"));
    }
}
