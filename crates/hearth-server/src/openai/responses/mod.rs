//! POST /v1/responses: OpenAI's Responses API (text in, text out, streamed or not),
//! with `instructions`, message items and `previous_response_id`.

pub mod reply;
pub mod request;
pub mod store;
pub mod stream;
pub mod tools;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hearth_text::{ChatMessage, ToolCall};
use serde_json::{json, Value};

use self::reply::ResponseShape;
use self::request::{to_messages, ResponsesRequest};
use super::sampling::submit_structured;
use super::tools::{forced_call, from_openai};
use super::types::SamplingFields;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::generate::{chat_prompt_ids_tools, collect, new_id};
use crate::json::ApiJson;
use crate::state::{unix_now, AppState};

#[utoipa::path(post, path = "/v1/responses", tag = "OpenAI",
    request_body = request::ResponsesRequest,
    responses(
        (status = 200, description = "A response object, or with `stream` an SSE stream of response.* events"),
        crate::openapi::OpenAiErrors,
    ))]
pub async fn create(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<RequestContext>>,
    ApiJson(req): ApiJson<ResponsesRequest>,
) -> Result<Response, ApiError> {
    st.check_model(&req.model)?;
    ctx.set_model(&req.model);
    ctx.set_subject(req.user.as_deref());
    let chat_tools = tools::chat_tools(req.tools.as_deref().unwrap_or_default())?;
    let choice = req.tool_choice.as_ref().map(tools::chat_tool_choice);
    let tool_req = from_openai(Some(&chat_tools), choice.as_ref(), req.parallel_tool_calls)?;
    if let Some(t) = &tool_req {
        st.limits.check_tool_request(t)?;
    }
    let parser = match &tool_req {
        Some(t) => t.parser(st.tool_parser)?,
        None => None,
    };
    let parallel = tool_req.as_ref().is_none_or(|t| t.parallel);
    let conversation = conversation(&st, &req)?;
    let template_tools = tool_req.as_ref().map(|t| t.template_tools.as_slice());
    let ids = chat_prompt_ids_tools(&st, &conversation, template_tools, "", &Default::default())?;
    let fields = SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_output_tokens,
        ..SamplingFields::default()
    };
    let filled = st.generation_defaults.fill(&fields);
    // A forced call's grammar wins over the text format (which still must be valid).
    let format = super::structured::responses_text_format(req.text.as_ref())?;
    let forced = forced_call(tool_req.as_ref(), parser).map(|spec| (spec, "tool_choice"));
    let constraint = forced.or(format);
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
        tools: json!(req.tools.clone().unwrap_or_default()),
        tool_choice: req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: parallel,
    };
    let remember = {
        let st = st.clone();
        let id = shape.id.clone();
        move |items: &[Value]| {
            if store {
                let mut all = conversation;
                all.push(assistant_turn(items));
                st.responses.put(id, all);
            }
        }
    };
    if req.stream == Some(true) {
        let parser = parser.map(|k| k.new_parser());
        let on_done = Box::new(remember);
        return Ok(stream::sse_response(
            stream, shape, parser, parallel, on_done,
        ));
    }
    let out = collect(stream).await?;
    let items = tools::output_items(&out.text, parser, parallel, |t| shape.message_item(t, true));
    remember(&items);
    let body: Value = shape.object(&items, Some((out.finish, out.usage)));
    Ok(Json(body).into_response())
}

/// The assistant turn a response's output items make (for `previous_response_id`).
fn assistant_turn(items: &[Value]) -> ChatMessage {
    let text: String = (items.iter())
        .filter(|i| i["type"] == "message")
        .filter_map(|i| i["content"][0]["text"].as_str())
        .collect();
    let calls: Vec<ToolCall> = (items.iter())
        .filter(|i| i["type"] == "function_call")
        .map(|i| {
            let args = i["arguments"].as_str().unwrap_or("{}");
            let args = serde_json::from_str(args).unwrap_or_else(|_| json!(args));
            let name = i["name"].as_str().unwrap_or_default();
            ToolCall::function(i["call_id"].as_str().map(str::to_string), name, args)
        })
        .collect();
    if calls.is_empty() {
        ChatMessage::new("assistant", text)
    } else {
        ChatMessage::assistant_tool_calls(text, calls)
    }
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
