//! Turns a sequence's new tokens into text deltas and decides when it stops.
//!
//! Stop strings are matched on the detokenized text, so they are found even when they
//! span tokens. Text that could still be the start of a stop string is held back
//! until it is known not to be one; a matched stop string is never emitted.

use hearth_text::IncrementalDetokenizer;

use crate::types::FinishReason;

pub struct StopChecker {
    detok: IncrementalDetokenizer,
    stop: Vec<String>,
    pending: String,
}

/// Why the caller thinks the sequence may end at this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVerdict {
    Normal,
    /// EOS or a stop id (already past `min_tokens`): ends the sequence, emits no text.
    StopToken,
    /// `max_tokens` or the context is used up after this token.
    LastAllowed,
    /// The constrained output is complete with this token: emits its text, then Stop.
    Complete,
}

impl StopChecker {
    pub fn new(detok: IncrementalDetokenizer, stop: Vec<String>) -> Self {
        StopChecker {
            detok,
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Feeds one generated token; returns the text to emit and, if the sequence ends
    /// here, why.
    pub fn on_token(&mut self, id: u32, verdict: TokenVerdict) -> (String, Option<FinishReason>) {
        if verdict == TokenVerdict::StopToken {
            return (std::mem::take(&mut self.pending), Some(FinishReason::Stop));
        }
        let piece = self.detok.push(id);
        self.pending.push_str(&piece);
        if let Some(at) = self.first_stop_match() {
            self.pending.truncate(at);
            return (std::mem::take(&mut self.pending), Some(FinishReason::Stop));
        }
        if matches!(verdict, TokenVerdict::LastAllowed | TokenVerdict::Complete) {
            let tail = self.detok.finish();
            self.pending.push_str(&tail);
            let reason = if verdict == TokenVerdict::Complete {
                FinishReason::Stop
            } else {
                FinishReason::Length
            };
            return (std::mem::take(&mut self.pending), Some(reason));
        }
        let keep_from = self.held_back_start();
        let rest = self.pending.split_off(keep_from);
        (std::mem::replace(&mut self.pending, rest), None)
    }

    /// Releases what is held back (the sequence ended for another reason).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    fn first_stop_match(&self) -> Option<usize> {
        self.stop
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
    }

    /// Start of the longest suffix of `pending` that begins some stop string.
    fn held_back_start(&self) -> usize {
        if self.stop.is_empty() {
            return self.pending.len();
        }
        self.pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let suffix = &self.pending[i..];
                self.stop.iter().any(|s| s.starts_with(suffix))
            })
            .unwrap_or(self.pending.len())
    }
}
