//! One log line per request, written when its response has ended: id, method, path,
//! status, latency, token counts. Never the prompt or the output.

use crate::context::{FinishedRequest, RequestObserver};

/// Logs at info level under the target `hearth::request`.
pub struct RequestLog;

/// Paths are the client's text: long ones are cut.
const MAX_PATH: usize = 200;

impl RequestObserver for RequestLog {
    fn finished(&self, r: &FinishedRequest) {
        let f = &r.fields;
        let path = cut(&r.endpoint, MAX_PATH);
        tracing::info!(
            target: "hearth::request",
            request_id = %r.id,
            method = %r.method,
            path = %path,
            status = r.status,
            latency_ms = r.latency.as_secs_f64() * 1000.0,
            completed = r.completed,
            key = f.key_name.as_deref(),
            model = f.model.as_deref(),
            prompt_tokens = f.prompt_tokens,
            completion_tokens = f.completion_tokens,
            finish_reason = f.finish_reason.as_deref(),
            "request"
        );
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_keeps_char_boundaries() {
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("aé", 2), "a");
    }
}
