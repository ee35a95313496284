//! POST /v1/completions (legacy text completions; prompt as text or token ids).

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
use super::types::{CompletionRequest, PromptField, UsageOut};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::fan_out::submit_n;
use crate::generate::{collect_all, new_id, total_usage};
use crate::json::ApiJson;
use crate::state::{unix_now, AppState};

/// A prompt after unwrapping lists of one.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// One prompt per request (no batching yet).
pub fn single_prompt(p: PromptField) -> Result<Prompt, ApiError> {
    let many = || ApiError::invalid_param("prompt", "only one prompt per request is supported");
    Ok(match p {
        PromptField::Text(t) => Prompt::Text(t),
        PromptField::Tokens(ids) => Prompt::Tokens(ids),
        PromptField::Texts(mut v) if v.len() == 1 => Prompt::Text(v.remove(0)),
        PromptField::TokenLists(mut v) if v.len() == 1 => Prompt::Tokens(v.remove(0)),
        _ => return Err(many()),
    })
}

/// Text is tokenized with the model's special tokens (vLLM's default for
/// completions); ids must be in the vocabulary.
fn prompt_ids(tok: &Tokenizer, p: Prompt) -> Result<Vec<u32>, ApiError> {
    match p {
        Prompt::Text(t) => tok
            .encode(&t, true)
            .map_err(|e| ApiError::internal(format!("tokenizer: {e}"))),
        Prompt::Tokens(ids) => {
            let vocab = tok.vocab_size();
            match ids.iter().find(|&&id| id as usize >= vocab) {
                Some(bad) => Err(ApiError::invalid_param(
                    "prompt",
                    format!("token id {bad} is out of the vocabulary (size {vocab})"),
                )),
                None => Ok(ids),
            }
        }
    }
}

#[utoipa::path(post, path = "/v1/completions", tag = "OpenAI",
    request_body = super::types::CompletionRequest,
    responses(
        (status = 200, description = "A text_completion object, or with `stream` an SSE stream of them ending in [DONE]"),
        crate::openapi::OpenAiErrors,
    ))]
pub async fn completions(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    st.check_model(&req.model)?;
    ctx.set_model(&req.model);
    ctx.set_subject(req.user.as_deref());
    if req.echo == Some(true) {
        return Err(ApiError::invalid_param("echo", "echo is not supported"));
    }
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_param("suffix", "suffix is not supported"));
    }
    let ids = prompt_ids(&st.tokenizer, single_prompt(req.prompt.clone())?)?;
    let logprobs = req
        .logprobs
        .map(|n| logprobs_count("logprobs", n))
        .transpose()?;
    let constraint = req.structured.constraint()?;
    let params = structured_params(&st, ids.len(), &req.sampling, logprobs, constraint)?;
    let n = usize::try_from(req.sampling.n.unwrap_or(1)).unwrap_or(1);
    let streams = submit_n(&st, &ctx, ids, params, n).await?;
    let fmt = CompletionChunks {
        id: new_id("cmpl"),
        created: unix_now(),
        model: req.model.clone(),
        tokenizer: logprobs.map(|_| st.tokenizer.clone()),
    };
    if req.sampling.stream == Some(true) {
        let usage = req.sampling.include_usage();
        return Ok(sse_response_n(streams, vec![fmt; n], usage));
    }
    let outs = collect_all(streams).await?;
    let choices: Vec<Value> = (outs.iter().enumerate())
        .map(|(i, out)| {
            let lp = logprobs.map(|_| logprobs::completion(&st.tokenizer, &out.logprobs, 0));
            json!({
                "index": i,
                "text": out.text,
                "logprobs": lp,
                "finish_reason": out.finish.as_openai(),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": fmt.id,
        "object": "text_completion",
        "created": fmt.created,
        "model": fmt.model,
        "choices": choices,
        "usage": UsageOut::from(total_usage(&outs)),
    }))
    .into_response())
}

/// `text_completion` chunks (OpenAI streams completions with the same object name).
#[derive(Clone)]
pub struct CompletionChunks {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub tokenizer: Option<Arc<Tokenizer>>,
}

impl CompletionChunks {
    fn chunk(&self, text: &str, logprobs: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish }],
        })
    }
}

impl ChunkFormat for CompletionChunks {
    fn delta(&self, text: &str, lps: &[TokenLogprob]) -> Value {
        let lp = match &self.tokenizer {
            Some(tok) if !lps.is_empty() => logprobs::completion(tok, lps, 0),
            _ => Value::Null,
        };
        self.chunk(text, lp, None)
    }

    fn finish(&self, reason: FinishReason) -> Value {
        self.chunk("", Value::Null, Some(reason.as_openai()))
    }

    fn usage(&self, usage: UsageOut) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_json;

    fn prompt(json: &str) -> Result<Prompt, ApiError> {
        let body = format!(r#"{{"model":"m","prompt":{json}}}"#);
        single_prompt(parse_json::<CompletionRequest>(body.as_bytes())?.prompt)
    }

    #[test]
    fn prompt_forms() {
        assert_eq!(prompt(r#""hi""#).unwrap(), Prompt::Text("hi".into()));
        assert_eq!(prompt("[1,2,3]").unwrap(), Prompt::Tokens(vec![1, 2, 3]));
        assert_eq!(prompt(r#"["hi"]"#).unwrap(), Prompt::Text("hi".into()));
        assert_eq!(prompt("[[4,5]]").unwrap(), Prompt::Tokens(vec![4, 5]));
        assert_eq!(prompt(r#"["a","b"]"#).unwrap_err().status.as_u16(), 400);
        assert_eq!(prompt("[-1]").unwrap_err().status.as_u16(), 400);
        assert_eq!(prompt("{}").unwrap_err().status.as_u16(), 400);
        assert_eq!(prompt("3").unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn chunks_have_openai_shape() {
        let f = CompletionChunks {
            id: "cmpl-1".into(),
            created: 1,
            model: "m".into(),
            tokenizer: None,
        };
        assert!(f.opening().is_none());
        let d = f.delta("ab", &[]);
        assert_eq!(d["object"], "text_completion");
        assert_eq!(d["choices"][0]["text"], "ab");
        assert!(d["choices"][0]["finish_reason"].is_null());
        assert_eq!(
            f.finish(FinishReason::Stop)["choices"][0]["finish_reason"],
            "stop"
        );
    }
}
