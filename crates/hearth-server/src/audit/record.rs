//! One audit record: what a finished request leaves behind.

use serde::{Deserialize, Serialize};

use super::{rfc3339, unix_ms};
use crate::context::FinishedRequest;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the request arrived, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The same instant in Unix milliseconds (filters and retention use it).
    pub time_ms: i64,
    pub request_id: String,
    pub key_name: Option<String>,
    pub method: String,
    pub endpoint: String,
    pub model: Option<String>,
    pub subject: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub latency_ms: u64,
    /// Time to first token.
    pub ttft_ms: Option<u64>,
    pub status: u16,
    pub finish_reason: Option<String>,
    /// False when the client went away before the response ended.
    pub completed: bool,
    /// Content (only with content logging on, until its retention ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
}

impl AuditRecord {
    /// The record of `r`; content only when the request captured it.
    pub fn from_finished(r: &FinishedRequest) -> AuditRecord {
        let f = &r.fields;
        let content = f.capture_output;
        AuditRecord {
            time: rfc3339(r.received_at),
            time_ms: unix_ms(r.received_at),
            request_id: r.id.clone(),
            key_name: f.key_name.clone(),
            method: r.method.clone(),
            endpoint: r.endpoint.clone(),
            model: f.model.clone(),
            subject: f.subject.clone(),
            prompt_tokens: f.prompt_tokens as u64,
            completion_tokens: f.completion_tokens as u64,
            cached_tokens: f.cached_prompt_tokens as u64,
            latency_ms: millis(r.latency),
            ttft_ms: f.first_token.map(millis),
            status: r.status,
            finish_reason: f.finish_reason.clone(),
            completed: r.completed,
            request_body: if content {
                f.request_body.clone()
            } else {
                None
            },
            output_text: content.then(|| f.output_text.clone()),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextFields;
    use std::time::{Duration, UNIX_EPOCH};

    fn finished(capture: bool) -> FinishedRequest {
        FinishedRequest {
            id: "r1".into(),
            method: "POST".into(),
            endpoint: "/v1/chat/completions".into(),
            status: 200,
            received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            latency: Duration::from_millis(42),
            completed: true,
            fields: ContextFields {
                model: Some("m".into()),
                prompt_tokens: 7,
                completion_tokens: 3,
                first_token: Some(Duration::from_millis(9)),
                capture_output: capture,
                output_text: "out".into(),
                request_body: Some("{\"prompt\":\"secret\"}".into()),
                ..ContextFields::default()
            },
        }
    }

    #[test]
    fn content_only_when_captured() {
        let r = AuditRecord::from_finished(&finished(false));
        assert_eq!((r.request_body, r.output_text), (None, None));
        assert_eq!((r.prompt_tokens, r.completion_tokens), (7, 3));
        assert_eq!((r.latency_ms, r.ttft_ms), (42, Some(9)));
        assert_eq!(r.time, "2023-11-14T22:13:20.123Z");
        let r = AuditRecord::from_finished(&finished(true));
        assert_eq!(r.output_text.as_deref(), Some("out"));
        assert!(r.request_body.unwrap().contains("secret"));
    }
}
