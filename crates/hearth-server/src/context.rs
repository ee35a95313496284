//! One request's shared record: who asked, for what, what it cost, how it ended.
//!
//! The outermost layer (`track`) makes a `RequestContext`, puts it in the request's
//! extensions and sets `x-request-id` on the response. Inner layers and handlers fill
//! it (auth: the key; handlers: model and subject; `TrackedStream`: tokens and times).
//! When the response body has ended, or the client went away, every
//! `RequestObserver` in `AppState` sees it once: the audit log and metrics hook in there.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// What a request accumulated while it ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextFields {
    /// The API key's name, once auth accepted one.
    pub key_name: Option<String>,
    pub model: Option<String>,
    /// The data subject the request is about (`user` field or a header), for erasure.
    pub subject: Option<String>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub cached_prompt_tokens: usize,
    /// From arrival to the first generated token.
    pub first_token: Option<Duration>,
    /// From arrival to the engine's finish event.
    pub generation_done: Option<Duration>,
    /// "stop", "length", "abort", ...
    pub finish_reason: Option<String>,
    /// Generated text, collected only while `capture_output` is on (content logging).
    pub capture_output: bool,
    pub output_text: String,
    /// The request body as sent, buffered only while content logging is on.
    pub request_body: Option<String>,
}

#[derive(Debug)]
pub struct RequestContext {
    pub id: String,
    pub method: String,
    /// The route's path, e.g. "/v1/chat/completions".
    pub endpoint: String,
    pub received: Instant,
    pub received_at: SystemTime,
    fields: Mutex<ContextFields>,
}

impl RequestContext {
    pub fn new(id: String, method: &str, endpoint: &str) -> RequestContext {
        RequestContext {
            id,
            method: method.to_string(),
            endpoint: endpoint.to_string(),
            received: Instant::now(),
            received_at: SystemTime::now(),
            fields: Mutex::new(ContextFields::default()),
        }
    }

    /// The fields, for reading or changing (held briefly: no await while held).
    pub fn fields(&self) -> MutexGuard<'_, ContextFields> {
        // A panic while holding it leaves plain data behind; keep using it.
        self.fields.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> ContextFields {
        self.fields().clone()
    }

    pub fn set_model(&self, model: &str) {
        self.fields().model = Some(model.to_string());
    }

    /// Records a request's `user`; an empty one means none.
    pub fn set_subject(&self, subject: Option<&str>) {
        if let Some(s) = subject.filter(|s| !s.is_empty()) {
            self.fields().subject = Some(s.to_string());
        }
    }
}

/// A request whose response has ended (or whose client went away).
#[derive(Debug, Clone)]
pub struct FinishedRequest {
    pub id: String,
    pub method: String,
    pub endpoint: String,
    pub status: u16,
    pub received_at: SystemTime,
    pub latency: Duration,
    /// False when the client disconnected before the body ended.
    pub completed: bool,
    pub fields: ContextFields,
}

/// Sees every request once, after its response. Called on a runtime thread: do
/// nothing slow here (hand work to a channel).
pub trait RequestObserver: Send + Sync {
    fn finished(&self, request: &FinishedRequest);
}

pub type Observers = Vec<Arc<dyn RequestObserver>>;
