//! Streaming decode: one token in, the newly complete text out.
//!
//! The prefix-offset / read-offset method of vLLM and TGI: decode a short window of
//! tokens twice, once without the new ones (`prefix`) and once with them (`full`),
//! and emit what `full` adds. Decoding a window rather than single tokens keeps
//! context-dependent decoders right; text is held back while it ends in U+FFFD,
//! i.e. while a multi-byte character is split across byte-level tokens.

use std::sync::Arc;

use crate::gguf_tokenizer::Tokenizer;

/// Prompt tokens kept as decoding context for the first generated token.
const PROMPT_CONTEXT: usize = 5;
/// Tokens before the window are dropped once there are this many.
const COMPACT_AFTER: usize = 256;

pub struct IncrementalDetokenizer {
    tokenizer: Arc<Tokenizer>,
    ids: Vec<u32>,
    /// Start of the decoding window.
    prefix_offset: usize,
    /// End of the text already emitted.
    read_offset: usize,
    skip_special: bool,
}

impl IncrementalDetokenizer {
    /// Starts after `prompt_ids`; special tokens produce no text.
    pub fn new(tokenizer: Arc<Tokenizer>, prompt_ids: &[u32]) -> Self {
        let ids = prompt_ids[prompt_ids.len().saturating_sub(PROMPT_CONTEXT)..].to_vec();
        let read_offset = ids.len();
        IncrementalDetokenizer {
            tokenizer,
            ids,
            prefix_offset: 0,
            read_offset,
            skip_special: true,
        }
    }

    /// Whether special tokens (`<|im_end|>`) are dropped from the text (default true).
    pub fn with_skip_special(mut self, skip_special: bool) -> Self {
        self.skip_special = skip_special;
        self
    }

    fn decode(&self, ids: &[u32]) -> String {
        // Ids come from the model's own vocabulary, so decoding cannot fail in
        // practice; if it does, emit nothing for them rather than stop the stream.
        self.tokenizer
            .decode(ids, self.skip_special)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "detokenizer could not decode ids");
                String::new()
            })
    }

    /// The text `full` adds after `prefix` (both decoded from the same start).
    fn delta(prefix: &str, full: &str) -> String {
        if let Some(rest) = full.strip_prefix(prefix) {
            return rest.to_string();
        }
        // The decoder changed earlier text: emit from the first difference.
        let mut at = prefix
            .bytes()
            .zip(full.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        while !full.is_char_boundary(at) {
            at -= 1;
        }
        full[at..].to_string()
    }

    /// Feeds one generated id; returns the new complete text (often empty).
    pub fn push(&mut self, id: u32) -> String {
        self.ids.push(id);
        let prefix = self.decode(&self.ids[self.prefix_offset..self.read_offset]);
        let full = self.decode(&self.ids[self.prefix_offset..]);
        if full.len() <= prefix.len() || full.ends_with('\u{FFFD}') {
            return String::new();
        }
        let out = Self::delta(&prefix, &full);
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        self.compact();
        out
    }

    /// Ends the stream: whatever is still held back (an incomplete character
    /// decodes as U+FFFD, as a non-streaming decode would show it).
    pub fn finish(&mut self) -> String {
        let prefix = self.decode(&self.ids[self.prefix_offset..self.read_offset]);
        let full = self.decode(&self.ids[self.prefix_offset..]);
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        if full.len() <= prefix.len() {
            return String::new();
        }
        Self::delta(&prefix, &full)
    }

    /// Drops ids before the window so memory stays bounded on long outputs.
    fn compact(&mut self) {
        if self.prefix_offset >= COMPACT_AFTER {
            self.ids.drain(..self.prefix_offset);
            self.read_offset -= self.prefix_offset;
            self.prefix_offset = 0;
        }
    }
}

#[cfg(test)]
#[path = "detokenizer_tests.rs"]
mod tests;
