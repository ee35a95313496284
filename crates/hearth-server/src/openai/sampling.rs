//! Validates the sampling fields of a request and turns them into engine params.
//! Bounds follow the OpenAI API reference and vLLM's checks.

use std::sync::Arc;

use hearth_engine::SamplingParams;
use hearth_text::ConstraintSpec;

use super::structured::FieldConstraint;
use super::types::SamplingFields;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::generate::submit;
use crate::state::AppState;
use crate::tracked_stream::TrackedStream;

/// Most alternatives per token a client may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i64 = 20;

/// `prompt_len` and `max_model_len` give the default `max_tokens`: the rest of the
/// context, as vLLM does. A prompt that fills the context gets 1 so the engine's
/// context check answers it.
/// Submits `ids` with the request's sampling fields, the model's generation defaults
/// filling what the request leaves unset.
pub fn submit_with_fields(
    st: &AppState,
    ctx: &Arc<RequestContext>,
    ids: Vec<u32>,
    f: &SamplingFields,
    logprobs: Option<usize>,
) -> Result<TrackedStream, ApiError> {
    submit_constrained(st, ctx, ids, f, logprobs, None)
}

/// `submit_with_fields` with the output held to `constraint` (a forced tool call).
pub fn submit_constrained(
    st: &AppState,
    ctx: &Arc<RequestContext>,
    ids: Vec<u32>,
    f: &SamplingFields,
    logprobs: Option<usize>,
    constraint: Option<ConstraintSpec>,
) -> Result<TrackedStream, ApiError> {
    let constraint = constraint.map(|spec| (spec, "tool_choice"));
    submit_structured(st, ctx, ids, f, logprobs, constraint)
}

/// `submit_with_fields` with the output held to a constraint; a constraint that does
/// not compile is a 400 naming the field it came from.
pub fn submit_structured(
    st: &AppState,
    ctx: &Arc<RequestContext>,
    ids: Vec<u32>,
    f: &SamplingFields,
    logprobs: Option<usize>,
    constraint: Option<FieldConstraint>,
) -> Result<TrackedStream, ApiError> {
    let params = structured_params(st, ids.len(), f, logprobs, constraint)?;
    submit(st, ctx, ids, params)
}

/// The engine params of a request: its fields over the model's defaults, checked
/// against the server's limits, with its constraint compiled.
pub fn structured_params(
    st: &AppState,
    prompt_len: usize,
    f: &SamplingFields,
    logprobs: Option<usize>,
    constraint: Option<FieldConstraint>,
) -> Result<SamplingParams, ApiError> {
    let filled = st.generation_defaults.fill(f);
    st.limits.check_n(filled.n.unwrap_or(1))?;
    let mut params = to_params(&filled, logprobs, prompt_len, st.engine.max_model_len())?;
    if let Some((ConstraintSpec::JsonSchema { schema, .. }, param)) = &constraint {
        st.limits.check_schema(param, schema)?;
    }
    if let Some((spec, param)) = &constraint {
        params.constraint = Some(st.constraints.compile(spec, param)?);
    }
    params.logit_bias =
        super::logit_bias::parse(filled.logit_bias.as_ref(), st.tokenizer.vocab_size())?;
    let params = st
        .limits
        .cap_output(crate::limits::output_param(&filled), params)?;
    Ok(params)
}

pub fn to_params(
    f: &SamplingFields,
    logprobs: Option<usize>,
    prompt_len: usize,
    max_model_len: usize,
) -> Result<SamplingParams, ApiError> {
    if let Some(n) = f.n {
        check(n >= 1, "n", "must be at least 1")?;
    }
    let d = SamplingParams::default();
    let temperature = f.temperature.unwrap_or(d.temperature);
    check(temperature >= 0.0, "temperature", "must be at least 0")?;
    let top_p = f.top_p.unwrap_or(d.top_p);
    check(top_p > 0.0 && top_p <= 1.0, "top_p", "must be in (0, 1]")?;
    let top_k = f.top_k.unwrap_or(0);
    check(top_k >= -1, "top_k", "must be -1 (disabled) or at least 0")?;
    let min_p = f.min_p.unwrap_or(d.min_p);
    check((0.0..=1.0).contains(&min_p), "min_p", "must be in [0, 1]")?;
    let presence = f.presence_penalty.unwrap_or(0.0);
    check(
        (-2.0..=2.0).contains(&presence),
        "presence_penalty",
        "must be in [-2, 2]",
    )?;
    let frequency = f.frequency_penalty.unwrap_or(0.0);
    check(
        (-2.0..=2.0).contains(&frequency),
        "frequency_penalty",
        "must be in [-2, 2]",
    )?;
    let repetition = f.repetition_penalty.unwrap_or(1.0);
    check(
        repetition > 0.0,
        "repetition_penalty",
        "must be greater than 0",
    )?;

    let (name, requested) = match (f.max_completion_tokens, f.max_tokens) {
        (Some(m), _) => ("max_completion_tokens", Some(m)),
        (None, m) => ("max_tokens", m),
    };
    let max_tokens = match requested {
        Some(m) if m < 1 => {
            return Err(ApiError::invalid_param(
                name,
                format!("{name} must be at least 1, got {m}"),
            ))
        }
        Some(m) => usize::try_from(m).unwrap_or(usize::MAX),
        None => max_model_len.saturating_sub(prompt_len).max(1),
    };
    let min_tokens = f.min_tokens.unwrap_or(0);
    check(min_tokens >= 0, "min_tokens", "must be at least 0")?;
    let min_tokens = usize::try_from(min_tokens).unwrap_or(usize::MAX);
    check(
        min_tokens <= max_tokens,
        "min_tokens",
        "must be at most max_tokens",
    )?;

    let stop = f
        .stop
        .clone()
        .map(|s| s.into_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    Ok(SamplingParams {
        temperature,
        top_p,
        top_k: top_k.clamp(0, i32::MAX as i64) as i32,
        min_p,
        presence_penalty: presence,
        frequency_penalty: frequency,
        repetition_penalty: repetition,
        // OpenAI's seed is any int64; its bits are the engine's seed.
        seed: f.seed.map(|s| s as u64),
        max_tokens,
        min_tokens,
        ignore_eos: f.ignore_eos.unwrap_or(false),
        stop,
        stop_token_ids: f.stop_token_ids.clone().unwrap_or_default(),
        logprobs,
        constraint: None,
        logit_bias: Vec::new(),
    })
}

/// Checks a `top_logprobs`/`logprobs` count.
pub fn logprobs_count(param: &str, n: i64) -> Result<usize, ApiError> {
    check(
        (0..=MAX_TOP_LOGPROBS).contains(&n),
        param,
        "must be in [0, 20]",
    )?;
    Ok(n as usize)
}

fn check(ok: bool, param: &str, what: &str) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_param(param, format!("{param} {what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::types::StopField;

    fn fields(json: &str) -> SamplingFields {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_fill_the_context() {
        let p = to_params(&fields("{}"), None, 10, 100).unwrap();
        assert_eq!(p.max_tokens, 90);
        assert_eq!(p.temperature, 1.0);
        assert_eq!(p.top_k, 0);
        assert!(p.stop.is_empty());
        assert_eq!(
            to_params(&fields("{}"), None, 100, 100).unwrap().max_tokens,
            1
        );
    }

    #[test]
    fn fields_are_carried() {
        let f = fields(
            r#"{"temperature":0,"top_p":0.5,"top_k":-1,"seed":-1,"max_tokens":7,
                "stop":"x","ignore_eos":true,"min_tokens":3,"repetition_penalty":1.1}"#,
        );
        assert_eq!(f.stop, Some(StopField::One("x".into())));
        let p = to_params(&f, Some(2), 5, 100).unwrap();
        assert_eq!((p.temperature, p.top_p, p.top_k), (0.0, 0.5, 0));
        assert_eq!((p.max_tokens, p.min_tokens), (7, 3));
        assert_eq!(p.seed, Some(u64::MAX));
        assert_eq!(p.stop, vec!["x".to_string()]);
        assert!(p.ignore_eos);
        assert_eq!(p.logprobs, Some(2));
        let p = to_params(
            &fields(r#"{"max_tokens":7,"max_completion_tokens":3}"#),
            None,
            1,
            100,
        );
        assert_eq!(p.unwrap().max_tokens, 3);
    }

    #[test]
    fn bad_values_are_400_with_param() {
        for (json, param) in [
            (r#"{"max_tokens":-1}"#, "max_tokens"),
            (r#"{"max_tokens":0}"#, "max_tokens"),
            (r#"{"max_completion_tokens":-5}"#, "max_completion_tokens"),
            (r#"{"temperature":-0.1}"#, "temperature"),
            (r#"{"top_p":0}"#, "top_p"),
            (r#"{"top_p":1.5}"#, "top_p"),
            (r#"{"top_k":-2}"#, "top_k"),
            (r#"{"min_p":2}"#, "min_p"),
            (r#"{"n":0}"#, "n"),
            (r#"{"presence_penalty":3}"#, "presence_penalty"),
            (r#"{"repetition_penalty":0}"#, "repetition_penalty"),
            (r#"{"max_tokens":2,"min_tokens":3}"#, "min_tokens"),
        ] {
            let e = to_params(&fields(json), None, 1, 100).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{json}");
            assert_eq!(e.param.as_deref(), Some(param), "{json}");
        }
        assert!(logprobs_count("top_logprobs", 21).is_err());
        assert_eq!(logprobs_count("top_logprobs", 5).unwrap(), 5);
    }

    #[test]
    fn huge_max_tokens_passes_to_the_engine_check() {
        let p = to_params(&fields(r#"{"max_tokens":1000000000000}"#), None, 1, 100).unwrap();
        assert_eq!(p.max_tokens, 1_000_000_000_000);
    }
}
