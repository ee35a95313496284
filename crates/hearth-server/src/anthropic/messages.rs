//! POST /v1/messages and POST /v1/messages/count_tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use hearth_engine::SamplingParams;
use serde_json::json;

use super::error::{AnthropicError, AnthropicJson};
use super::prompt::{prompt, prompt_ids};
use super::reply::Reply;
use super::sse::sse_response;
use super::types::{MessagesRequest, PromptFields};
use crate::context::RequestContext;
use crate::generate::{collect, submit};
use crate::openai::sampling::to_params;
use crate::openai::tools::forced_call;
use crate::openai::types::{SamplingFields, StopField};
use crate::state::AppState;

/// `x-api-key` and `anthropic-version` are accepted and not checked (no auth yet).
#[utoipa::path(post, path = "/v1/messages", tag = "Anthropic",
    request_body = super::types::MessagesRequest,
    params(
        ("x-api-key" = Option<String>, Header, description = "API key (or Authorization: Bearer)"),
        ("anthropic-version" = Option<String>, Header, description = "Accepted, not checked"),
    ),
    responses(
        (status = 200, description = "A message object, or with `stream` an SSE stream of message events"),
        crate::openapi::AnthropicErrors,
    ))]
pub async fn messages(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    AnthropicJson(mut req): AnthropicJson<MessagesRequest>,
) -> Result<Response, AnthropicError> {
    ctx.set_model(&req.prompt.model);
    ctx.set_subject(req.metadata.as_ref().and_then(|m| m.user_id.as_deref()));
    let (ids, tools) = prompt(&st, &req.prompt)?;
    let parser = match &tools {
        Some(t) => t.parser(st.tool_parser)?,
        None => None,
    };
    // The model's own defaults where the request leaves a field unset (temperature
    // within Anthropic's [0, 1]).
    let d = st.generation_defaults;
    req.temperature = req.temperature.or(d.temperature.map(|t| t.min(1.0)));
    req.top_p = req.top_p.or(d.top_p);
    req.top_k = req.top_k.or(d.top_k);
    let mut params = to_sampling(&req, ids.len(), st.engine.max_model_len())?;
    // Anthropic requests have no min_p/repetition_penalty: the model's apply.
    params.min_p = d.min_p.unwrap_or(params.min_p);
    params.repetition_penalty = d.repetition_penalty.unwrap_or(params.repetition_penalty);
    if let Some(spec) = forced_call(tools.as_ref(), parser) {
        params.constraint = Some(st.constraints.compile(&spec, "tool_choice")?);
    }
    let mut reply = Reply::new(
        req.prompt.model.clone(),
        ids.len(),
        params.stop.clone(),
        st.tokenizer.clone(),
    );
    let parallel = tools.as_ref().is_none_or(|t| t.parallel);
    reply.tools = parser.map(|k| (k, parallel));
    let stream = submit(&st, &ctx, ids, params)?;
    if req.stream == Some(true) {
        return Ok(sse_response(stream, reply));
    }
    let out = collect(stream).await?;
    Ok(Json(reply.finished(&out.text, out.finish, &out.token_ids, out.usage)).into_response())
}

#[utoipa::path(post, path = "/v1/messages/count_tokens", tag = "Anthropic",
    request_body = super::types::PromptFields,
    responses((status = 200, description = "`{\"input_tokens\": N}`"), (status = 400, description = "Invalid request")))]
pub async fn count_tokens(
    State(st): State<Arc<AppState>>,
    AnthropicJson(req): AnthropicJson<PromptFields>,
) -> Result<Response, AnthropicError> {
    let ids = prompt_ids(&st, &req)?;
    Ok(Json(json!({ "input_tokens": ids.len() })).into_response())
}

/// Anthropic's sampling fields through the shared validation; Anthropic bounds
/// temperature to [0, 1].
pub fn to_sampling(
    req: &MessagesRequest,
    prompt_len: usize,
    max_model_len: usize,
) -> Result<SamplingParams, AnthropicError> {
    if let Some(t) = req.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(AnthropicError::invalid("temperature: must be in [0, 1]"));
        }
    }
    let fields = SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        max_tokens: Some(req.max_tokens),
        stop: req.stop_sequences.clone().map(StopField::Many),
        ..SamplingFields::default()
    };
    Ok(to_params(&fields, None, prompt_len, max_model_len)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_json;

    fn req(json: &str) -> MessagesRequest {
        parse_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn sampling_fields_are_carried_and_checked() {
        let r = req(
            r#"{"model":"m","max_tokens":5,"messages":[],"temperature":0.5,"top_p":0.9,"top_k":3,
            "stop_sequences":["END","\n\n"],"metadata":{"user_id":"u1"},"stream":true}"#,
        );
        let p = to_sampling(&r, 4, 100).unwrap();
        assert_eq!(
            (p.max_tokens, p.temperature, p.top_p, p.top_k),
            (5, 0.5, 0.9, 3)
        );
        assert_eq!(p.stop, vec!["END".to_string(), "\n\n".to_string()]);
        for (body, field) in [
            (
                r#"{"model":"m","max_tokens":0,"messages":[]}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[],"temperature":1.5}"#,
                "temperature",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[],"top_p":0}"#,
                "top_p",
            ),
        ] {
            let e = to_sampling(&req(body), 4, 100).unwrap_err();
            assert_eq!((e.status.as_u16(), e.kind), (400, "invalid_request_error"));
            assert!(e.message.starts_with(field), "{}", e.message);
        }
        // max_tokens is required; wrong types do not parse.
        for body in [
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","max_tokens":"5","messages":[]}"#,
            r#"{"model":"m","max_tokens":5,"messages":"hi"}"#,
            r#"{"model":"m","max_tokens":5,"messages":[],"stop_sequences":"x"}"#,
        ] {
            assert_eq!(
                parse_json::<MessagesRequest>(body.as_bytes())
                    .unwrap_err()
                    .status
                    .as_u16(),
                400
            );
        }
    }
}
