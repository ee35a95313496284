//! The auth layer: finds the presented key, checks it, its scopes and its limits,
//! and records the key's name in the request's context. Runs inside `track`, so a
//! refused request is still tracked (and audited) with its status.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;

use super::key::{format_time, KeyInfo};
use super::rate_limit::InFlight;
use super::reply::{Refused, Shape};
use super::{access_for, Access, Auth};
use crate::body_end::on_body_end;
use crate::context::RequestContext;
use crate::state::{unix_now, AppState};

pub async fn authenticate(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(auth) = st.auth.clone() else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    let access = access_for(&path);
    if access == Access::Open {
        return next.run(req).await;
    }
    let shape = Shape::for_path(&path);
    match admit(&auth, &st, req, access, &path).await {
        Ok((req, in_flight)) => {
            let resp = next.run(req).await;
            match in_flight {
                Some(held) => hold_until_body_ends(resp, held),
                None => resp,
            }
        }
        Err(refused) => refused.into_response(shape),
    }
}

/// The checks, in order: a key at all, a valid one, route, model, limits.
async fn admit(
    auth: &Auth,
    st: &AppState,
    req: Request,
    access: Access,
    path: &str,
) -> Result<(Request, Option<InFlight>), Refused> {
    let internal = |e: super::AuthError| {
        tracing::error!(error = %e, "API key check failed");
        Refused::internal("the API key could not be checked")
    };
    if !auth.enabled().await.map_err(internal)? {
        return Ok((req, None));
    }
    let presented = presented_key(req.headers()).ok_or_else(|| {
        Refused::unauthorized(
            "an API key is required: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
        )
    })?;
    let key = auth
        .lookup(presented)
        .await
        .map_err(internal)?
        .ok_or_else(|| Refused::unauthorized("invalid API key"))?;
    if key.revoked_at.is_some() {
        return Err(Refused::unauthorized("this API key has been revoked"));
    }
    if let Some(t) = key.expires_at.filter(|_| key.is_expired(unix_now())) {
        return Err(Refused::unauthorized(format!(
            "this API key expired at {}",
            format_time(t)
        )));
    }
    if let Some(ctx) = req.extensions().get::<Arc<RequestContext>>() {
        record_key(ctx, &key);
    }
    if access == Access::Admin && !key.admin {
        return Err(Refused::forbidden(format!(
            "`{path}` needs an admin API key"
        )));
    }
    if access == Access::Key && !key.allows_endpoint(path) {
        return Err(Refused::forbidden(format!(
            "this API key may not call `{path}`"
        )));
    }
    let req = check_model_scope(&key, st, req, path).await?;
    let held = auth
        .limiter
        .admit(&key, Instant::now())
        .map_err(|r| Refused::too_many(r.message(), r.retry_after_secs()))?;
    let mut req = req;
    req.extensions_mut().insert(Arc::new(key));
    Ok((req, Some(held)))
}

/// The audit log and metrics learn who asked; a content-logging key turns capture on.
fn record_key(ctx: &RequestContext, key: &KeyInfo) {
    let mut f = ctx.fields();
    f.key_name = Some(key.name.clone());
    if key.log_content {
        f.capture_output = true;
    }
}

/// `Authorization: Bearer KEY`, else `x-api-key: KEY`.
fn presented_key(h: &HeaderMap) -> Option<String> {
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim());
    let x_api_key = h
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    bearer
        .or(x_api_key)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

#[derive(Deserialize)]
struct ModelField {
    model: Option<String>,
}

/// A key limited to some models may only name those. The model is in the path for
/// `GET /v1/models/{model}` and in the JSON body of every POST; the body is read here
/// (bounded by the body limit) and handed on unchanged.
async fn check_model_scope(
    key: &KeyInfo,
    st: &AppState,
    req: Request,
    path: &str,
) -> Result<Request, Refused> {
    if key.models.is_empty() {
        return Ok(req);
    }
    let denied = |m: &str| Refused::forbidden(format!("this API key may not use the model `{m}`"));
    if let Some(m) = path.strip_prefix("/v1/models/") {
        return if key.allows_model(m) {
            Ok(req)
        } else {
            Err(denied(m))
        };
    }
    if req.method() != Method::POST {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, st.max_body_bytes)
        .await
        .map_err(|_| Refused::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large"))?;
    // A body whose model cannot be read is refused here rather than trusted later.
    let model = serde_json::from_slice::<ModelField>(&bytes)
        .ok()
        .and_then(|f| f.model)
        .ok_or_else(|| Refused {
            param: Some("model"),
            ..Refused::new(
                StatusCode::BAD_REQUEST,
                "the request must be a JSON object with a string `model`",
            )
        })?;
    if !key.allows_model(&model) {
        return Err(denied(&model));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The key's in-flight slot lasts as long as the response body, streams included.
fn hold_until_body_ends(resp: Response, held: InFlight) -> Response {
    if held.is_unlimited() {
        return resp;
    }
    on_body_end(resp, held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn key_name_and_content_logging_go_into_the_context() {
        let key = |log_content| KeyInfo {
            id: 1,
            name: "svc".into(),
            prefix: "hth_x".into(),
            models: vec![],
            endpoints: vec![],
            rpm: None,
            max_concurrency: None,
            expires_at: None,
            admin: false,
            log_content,
            created_at: 0,
            revoked_at: None,
        };
        let ctx = RequestContext::new("r".into(), "POST", "/v1/chat/completions");
        record_key(&ctx, &key(false));
        let f = ctx.snapshot();
        assert_eq!(
            (f.key_name.as_deref(), f.capture_output),
            (Some("svc"), false)
        );
        record_key(&ctx, &key(true));
        assert!(ctx.snapshot().capture_output);
    }

    #[test]
    fn key_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("hth_a"));
        assert_eq!(presented_key(&h).as_deref(), Some("hth_a"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer hth_b"),
        );
        assert_eq!(presented_key(&h).as_deref(), Some("hth_b"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h).as_deref(), Some("hth_a"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  "));
        assert_eq!(presented_key(&h), None);
    }
}
