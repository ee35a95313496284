//! POST /v1/responses: OpenAI's Responses API (text in, text out, streamed or not),
//! with `instructions`, message items and `previous_response_id`.

pub mod reply;
pub mod request;
pub mod store;
pub mod stream;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hearth_text::ChatMessage;
use serde_json::{json, Value};

use self::reply::ResponseShape;
use self::request::{to_messages, ResponsesRequest};
use super::sampling::submit_structured;
use super::types::SamplingFields;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::generate::{chat_prompt_ids, collect, new_id};
use crate::json::ApiJson;
use crate::state::{unix_now, AppState};

#[utoipa::path(post, path = "/v1/responses", tag = "OpenAI",
    request_body = request::ResponsesRequest,
    responses(
        (status = 200, description = "A response object, or with `stream` an SSE stream of response.* events"),
        (status = 400, description = "Invalid request (OpenAI error object)"),
        (status = 401, description = "Missing or invalid API key"),
        (status = 404, description = "Unknown model"),
        (status = 413, description = "Request body too large"),
        (status = 429, description = "Rate or concurrency limit of the key (Retry-After)"),
        (status = 503, description = "Queue full, draining, or audit log failing (fail-closed)"),
    ))]
pub async fn create(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    ApiJson(req): ApiJson<ResponsesRequest>,
) -> Result<Response, ApiError> {
    st.check_model(&req.model)?;
    ctx.set_model(&req.model);
    ctx.set_subject(req.user.as_deref());
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::invalid_param(
            "tools",
            "tools are not supported on /v1/responses yet; use /v1/chat/completions",
        ));
    }
    let conversation = conversation(&st, &req)?;
    let ids = chat_prompt_ids(&st, &conversation, "")?;
    let fields = SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_output_tokens,
        ..SamplingFields::default()
    };
    let filled = st.generation_defaults.fill(&fields);
    let constraint = super::structured::responses_text_format(req.text.as_ref())?;
    let stream = submit_structured(&st, &ctx, ids, &fields, None, constraint)?;
    let store = req.store != Some(false);
    let shape = ResponseShape {
        id: new_id("resp"),
        message_id: new_id("msg"),
        created_at: unix_now(),
        model: req.model.clone(),
        instructions: req.instructions.clone(),
        max_output_tokens: req.max_output_tokens,
        temperature: filled.temperature.unwrap_or(1.0),
        top_p: filled.top_p.unwrap_or(1.0),
        previous_response_id: req.previous_response_id.clone(),
        metadata: req.metadata.clone().unwrap_or_else(|| json!({})),
        text: req
            .text
            .clone()
            .unwrap_or_else(|| json!({ "format": { "type": "text" } })),
        store,
    };
    let remember = {
        let st = st.clone();
        let id = shape.id.clone();
        move |answer: &str| {
            if store {
                let mut all = conversation;
                all.push(ChatMessage::new("assistant", answer));
                st.responses.put(id, all);
            }
        }
    };
    if req.stream == Some(true) {
        return Ok(stream::sse_response(stream, shape, Box::new(remember)));
    }
    let out = collect(stream).await?;
    remember(&out.text);
    let body: Value = shape.object(&out.text, Some((out.finish, out.usage)));
    Ok(Json(body).into_response())
}

/// The earlier response's conversation (if any), then the instructions as a system
/// message, then this request's input.
fn conversation(st: &AppState, req: &ResponsesRequest) -> Result<Vec<ChatMessage>, ApiError> {
    let mut msgs = Vec::new();
    if let Some(prev) = &req.previous_response_id {
        let earlier = st.responses.get(prev).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("no stored response with id `{prev}`"),
            )
        })?;
        // Earlier instructions do not carry over (OpenAI's rule): drop system turns.
        msgs.extend(earlier.into_iter().filter(|m| m.role != "system"));
    }
    if let Some(i) = &req.instructions {
        msgs.insert(0, ChatMessage::new("system", i.clone()));
    }
    msgs.extend(to_messages(&req.input)?);
    Ok(msgs)
}
