//! GET /v1/models and GET /v1/models/{model}.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::auth::KeyInfo;
use crate::error::ApiError;
use crate::state::AppState;

fn card(st: &AppState, name: &str) -> Value {
    json!({
        "id": name,
        "object": "model",
        "created": st.created,
        "owned_by": "hearth",
        "max_model_len": st.engine.max_model_len(),
    })
}

#[utoipa::path(get, path = "/v1/models", tag = "OpenAI",
    responses((status = 200, description = "The served model names (OpenAI list of models)")))]
pub async fn list(
    State(st): State<Arc<AppState>>,
    key: Option<Extension<Arc<KeyInfo>>>,
) -> Json<Value> {
    // A key limited to some models sees only those.
    let data: Vec<Value> = st
        .model_names
        .iter()
        .filter(|n| key.as_ref().is_none_or(|k| k.allows_model(n)))
        .map(|n| card(&st, n))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

#[utoipa::path(get, path = "/v1/models/{model}", tag = "OpenAI",
    params(("model" = String, Path, description = "A served model name")),
    responses((status = 200, description = "The model"), (status = 404, description = "Unknown model")))]
pub async fn retrieve(
    State(st): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.check_model(&model)?;
    Ok(Json(card(&st, &model)))
}
