//! POST /v1/chat/completions.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use hearth_engine::{FinishReason, TokenLogprob};
use hearth_text::Tokenizer;
use serde_json::{json, Value};

use super::logprobs;
use super::sampling::{logprobs_count, structured_params};
use super::sse::{sse_response_n, ChunkFormat};
use super::tool_stream::{self, ToolChunks};
use super::tools::{forced_call, from_openai};
use super::types::{ChatCompletionRequest, UsageOut};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::fan_out::submit_n;
use crate::generate::{chat_prompt_ids_tools, collect_all, new_id, total_usage};
use crate::json::ApiJson;
use crate::state::{unix_now, AppState};

#[utoipa::path(post, path = "/v1/chat/completions", tag = "OpenAI",
    request_body = super::types::ChatCompletionRequest,
    responses(
        (status = 200, description = "A chat.completion object, or with `stream` an SSE stream of chat.completion.chunk objects ending in [DONE]"),
        crate::openapi::OpenAiErrors,
    ))]
pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    st.check_model(&req.model)?;
    ctx.set_model(&req.model);
    ctx.set_subject(req.user.as_deref());
    let messages = to_chat_messages(&req.messages)?;
    let tools = from_openai(
        req.tools.as_deref(),
        req.tool_choice.as_ref(),
        req.parallel_tool_calls,
    )?;
    if let Some(t) = &tools {
        st.limits.check_tool_request(t)?;
    }
    let parser = match &tools {
        Some(t) => t.parser(st.tool_parser)?,
        None => None,
    };
    let template_tools = tools.as_ref().map(|t| t.template_tools.as_slice());
    let kwargs = req.chat_template_kwargs.clone().unwrap_or_default();
    let ids = chat_prompt_ids_tools(&st, &messages, template_tools, "", &kwargs)?;
    let logprobs = match req.logprobs {
        Some(true) => Some(logprobs_count(
            "top_logprobs",
            req.top_logprobs.unwrap_or(0),
        )?),
        _ => None,
    };
    // A forced tool call's grammar wins over response_format (which still must be valid).
    let structured = req.structured.constraint()?;
    let forced = forced_call(tools.as_ref(), parser).map(|spec| (spec, "tool_choice"));
    let constraint = forced.or(structured);
    let params = structured_params(&st, ids.len(), &req.sampling, logprobs, constraint)?;
    let n = usize::try_from(req.sampling.n.unwrap_or(1)).unwrap_or(1);
    let streams = submit_n(&st, &ctx, ids, params, n).await?;
    let fmt = ChatChunks {
        id: new_id("chatcmpl"),
        created: unix_now(),
        model: req.model.clone(),
        tokenizer: logprobs.map(|_| st.tokenizer.clone()),
    };
    let parallel = tools.as_ref().is_none_or(|t| t.parallel);
    if req.sampling.stream == Some(true) {
        let usage = req.sampling.include_usage();
        return Ok(match parser {
            Some(kind) => {
                let fmts = (0..n)
                    .map(|_| ToolChunks::new(fmt.clone(), kind, parallel))
                    .collect();
                sse_response_n(streams, fmts, usage)
            }
            None => sse_response_n(streams, vec![fmt; n], usage),
        });
    }
    let outs = collect_all(streams).await?;
    let choices: Vec<Value> = (outs.iter().enumerate())
        .map(|(i, out)| {
            let lp = logprobs.map(|_| logprobs::chat(&st.tokenizer, &out.logprobs));
            let (message, finish) = match parser {
                Some(kind) => tool_stream::message(&out.text, kind, parallel, out.finish),
                None => (
                    json!({ "role": "assistant", "content": out.text }),
                    out.finish.as_openai(),
                ),
            };
            json!({ "index": i, "message": message, "logprobs": lp, "finish_reason": finish })
        })
        .collect();
    Ok(Json(json!({
        "id": fmt.id,
        "object": "chat.completion",
        "created": fmt.created,
        "model": fmt.model,
        "choices": choices,
        "usage": UsageOut::from(total_usage(&outs)),
    }))
    .into_response())
}

pub use super::messages::to_chat_messages;

/// `chat.completion.chunk` objects.
#[derive(Clone)]
pub struct ChatChunks {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Set when the client asked for logprobs.
    pub tokenizer: Option<Arc<Tokenizer>>,
}

impl ChatChunks {
    pub(crate) fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// A chunk's `logprobs` (null unless the client asked and there are some).
    pub(crate) fn logprobs(&self, lps: &[TokenLogprob]) -> Value {
        match &self.tokenizer {
            Some(tok) if !lps.is_empty() => logprobs::chat(tok, lps),
            _ => Value::Null,
        }
    }

    pub(crate) fn choice(delta: Value, logprobs: Value, finish: Option<&str>) -> Value {
        json!([{ "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish }])
    }
}

impl ChunkFormat for ChatChunks {
    fn opening(&self) -> Option<Value> {
        let delta = json!({ "role": "assistant", "content": "" });
        Some(self.chunk(Self::choice(delta, Value::Null, None)))
    }

    fn delta(&self, text: &str, lps: &[TokenLogprob]) -> Value {
        let lp = self.logprobs(lps);
        self.chunk(Self::choice(json!({ "content": text }), lp, None))
    }

    fn finish(&self, reason: FinishReason) -> Value {
        self.chunk(Self::choice(
            json!({}),
            Value::Null,
            Some(reason.as_openai()),
        ))
    }

    fn usage(&self, usage: UsageOut) -> Value {
        let mut c = self.chunk(json!([]));
        c["usage"] = json!(usage);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_json;

    #[test]
    fn messages_convert_text_and_parts() {
        let req: ChatCompletionRequest = parse_json(
            br#"{"model":"m","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
            {"role":"assistant","content":null}], "unknown_field": {"x": 1}}"#,
        )
        .unwrap();
        let m = to_chat_messages(&req.messages).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].role.as_str(), m[0].content.as_str()),
            ("system", "be brief")
        );
        assert_eq!(m[1].content, "ab");
        assert_eq!(m[2].content, "");
    }

    #[test]
    fn chunks_have_openai_shape() {
        let f = ChatChunks {
            id: "chatcmpl-1".into(),
            created: 5,
            model: "m".into(),
            tokenizer: None,
        };
        let first = f.opening().unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert!(first["choices"][0]["finish_reason"].is_null());
        let d = f.delta("hi", &[]);
        assert_eq!(d["choices"][0]["delta"], json!({"content": "hi"}));
        assert_eq!(d["id"], "chatcmpl-1");
        let end = f.finish(FinishReason::Length);
        assert_eq!(end["choices"][0]["finish_reason"], "length");
        assert_eq!(end["choices"][0]["delta"], json!({}));
        let usage = hearth_engine::Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            cached_prompt_tokens: 0,
        };
        let u = f.usage(usage.into());
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["total_tokens"], 7);
    }

    #[test]
    fn bad_messages_are_400() {
        let e = to_chat_messages(&[]).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        let req: ChatCompletionRequest = parse_json(
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            to_chat_messages(&req.messages).unwrap_err().status.as_u16(),
            400
        );
        // Missing model, wrong types.
        for body in [
            &br#"{"messages":[]}"#[..],
            br#"{"model":"m","messages":"hi"}"#,
            br#"{"model":"m","messages":[],"max_tokens":"ten"}"#,
            br#"{"model":"m","messages":[],"stream":1}"#,
        ] {
            let e = parse_json::<ChatCompletionRequest>(body).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
        }
    }
}
