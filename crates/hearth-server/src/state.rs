//! What every handler shares: the engine, the text side of the model, its names.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_engine::EngineHandle;
use hearth_text::{ChatTemplate, Tokenizer};

use crate::audit::AuditLog;
use crate::context::Observers;
use crate::error::ApiError;
use crate::metrics::ServerMetrics;
use crate::openai::types::SamplingFields;
use crate::request_log::RequestLog;

/// Default request-body limit (a long chat history fits easily).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

pub struct AppState {
    pub engine: EngineHandle,
    pub tokenizer: Arc<Tokenizer>,
    pub template: Arc<ChatTemplate>,
    /// Names a request's `model` may use; the first is the one reported.
    pub model_names: Vec<String>,
    /// Unix seconds the model was loaded (reported by /v1/models).
    pub created: u64,
    pub max_body_bytes: usize,
    /// The model's own sampling defaults (generation_config.json), used where a
    /// request leaves the field unset.
    pub generation_defaults: GenerationDefaults,
    /// How tool calls are found in answers (`--tool-call-parser`, else from the
    /// model); `None`: requests that let the model call tools get a 400.
    pub tool_parser: Option<hearth_text::tool_parsers::ToolParserKind>,
    /// Compiles llguidance constraints for this model's vocabulary.
    pub constraints: crate::constraints::Constraints,
    /// API keys (`None`: no key checks at all, as in library tests); see `auth`.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The Host allowlist against DNS rebinding (`None`: any Host).
    pub host_guard: Option<crate::auth::HostGuard>,
    /// Origins CORS allows; empty: CORS off.
    pub cors_origins: Vec<String>,
    /// Per-request limits: prompt and output tokens, n, tools, schemas.
    pub limits: crate::limits::RequestLimits,
    /// Told about every request once its response is over (audit log, metrics).
    pub observers: Observers,
    /// The audit log, when one is kept (also one of the observers).
    pub audit: Option<Arc<AuditLog>>,
    /// Prometheus metrics (also one of the observers).
    pub metrics: Arc<ServerMetrics>,
    /// Set at once on shutdown: /ready answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// The commit the binary was built from, when known (/version).
    pub git_commit: Option<String>,
    /// Responses kept for `previous_response_id` (/v1/responses).
    pub responses: crate::openai::responses::store::ResponseStore,
}

/// Sampling defaults a model folder ships; `None` keeps the API's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
}

impl GenerationDefaults {
    /// `f` with its unset fields taken from these defaults.
    pub fn fill(&self, f: &SamplingFields) -> SamplingFields {
        SamplingFields {
            temperature: f.temperature.or(self.temperature),
            top_p: f.top_p.or(self.top_p),
            top_k: f.top_k.or(self.top_k),
            min_p: f.min_p.or(self.min_p),
            repetition_penalty: f.repetition_penalty.or(self.repetition_penalty),
            ..f.clone()
        }
    }
}

impl AppState {
    pub fn new(
        engine: EngineHandle,
        tokenizer: Arc<Tokenizer>,
        template: Arc<ChatTemplate>,
        model_names: Vec<String>,
    ) -> Self {
        let constraints = crate::constraints::Constraints::new(tokenizer.clone());
        let metrics = Arc::new(ServerMetrics::new());
        let observers: Observers = vec![metrics.clone(), Arc::new(RequestLog)];
        AppState {
            engine,
            tokenizer,
            template,
            model_names,
            created: unix_now(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            generation_defaults: GenerationDefaults::default(),
            auth: None,
            host_guard: Some(crate::auth::HostGuard::new::<&str>(&[])),
            cors_origins: Vec::new(),
            limits: crate::limits::RequestLimits::default(),
            tool_parser: None,
            constraints,
            observers,
            audit: None,
            metrics,
            draining: Arc::new(AtomicBool::new(false)),
            git_commit: None,
            responses: Default::default(),
        }
    }

    /// The request's `model` must be one of the served names.
    pub fn check_model(&self, model: &str) -> Result<(), ApiError> {
        check_model(&self.model_names, model)
    }
}

pub fn check_model(names: &[String], model: &str) -> Result<(), ApiError> {
    if names.iter().any(|n| n == model) {
        Ok(())
    } else {
        Err(ApiError::model_not_found(model))
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_unset_fields() {
        let d = GenerationDefaults {
            temperature: Some(0.6),
            top_p: Some(0.9),
            top_k: Some(20),
            min_p: None,
            repetition_penalty: Some(1.1),
        };
        let f = SamplingFields {
            temperature: Some(0.0),
            repetition_penalty: Some(1.0),
            ..SamplingFields::default()
        };
        let g = d.fill(&f);
        assert_eq!(
            (
                g.temperature,
                g.top_p,
                g.top_k,
                g.min_p,
                g.repetition_penalty
            ),
            (Some(0.0), Some(0.9), Some(20), None, Some(1.0))
        );
    }

    #[test]
    fn unknown_model_is_404() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert!(check_model(&names, "b").is_ok());
        let e = check_model(&names, "c").unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
    }
}
