//! A request's engine stream that writes what passes through it into the request's
//! context: token counts, time to first token, finish reason (and the text, when
//! content logging asked for it).

use std::sync::Arc;

use hearth_engine::{Event, RequestStream};

use crate::context::RequestContext;

/// Several streams may share one context (n > 1): token counts add up.
pub struct TrackedStream {
    inner: RequestStream,
    ctx: Arc<RequestContext>,
    /// Generated tokens this stream already added to the context.
    counted: usize,
    /// An event already read by `wait_started`, handed out next.
    peeked: Option<Event>,
}

impl TrackedStream {
    pub fn new(inner: RequestStream, ctx: Arc<RequestContext>) -> TrackedStream {
        TrackedStream {
            inner,
            ctx,
            counted: 0,
            peeked: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.inner.id()
    }

    pub fn context(&self) -> &Arc<RequestContext> {
        &self.ctx
    }

    /// Waits for the first event (the prompt is computed by then, and its full
    /// blocks are in the prefix cache); `next` still yields it.
    pub async fn wait_started(&mut self) {
        if self.peeked.is_none() {
            self.peeked = self.read().await;
        }
    }

    pub async fn next(&mut self) -> Option<Event> {
        match self.peeked.take() {
            Some(ev) => Some(ev),
            None => self.read().await,
        }
    }

    async fn read(&mut self) -> Option<Event> {
        let ev = self.inner.next().await;
        match &ev {
            Some(Event::Delta {
                text, token_ids, ..
            }) => {
                let mut f = self.ctx.fields();
                if f.first_token.is_none() && !token_ids.is_empty() {
                    f.first_token = Some(self.ctx.received.elapsed());
                }
                f.completion_tokens += token_ids.len();
                self.counted += token_ids.len();
                if f.capture_output {
                    f.output_text.push_str(text);
                }
            }
            Some(Event::Finished { reason, usage }) => {
                let mut f = self.ctx.fields();
                f.generation_done = Some(self.ctx.received.elapsed());
                f.finish_reason = Some(reason.as_openai().to_string());
                f.prompt_tokens = usage.prompt_tokens;
                f.completion_tokens += usage.completion_tokens.saturating_sub(self.counted);
                self.counted = self.counted.max(usage.completion_tokens);
                f.cached_prompt_tokens = f.cached_prompt_tokens.max(usage.cached_prompt_tokens);
            }
            Some(Event::Error(_)) => {
                self.ctx.fields().finish_reason = Some("error".to_string());
            }
            None => {}
        }
        ev
    }
}
