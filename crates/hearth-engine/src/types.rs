//! What goes into the engine and what comes out of it.

use crate::constraint::SharedConstraint;

/// Per-request sampling and stopping controls (OpenAI/vLLM semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 or less disables top-k.
    pub top_k: i32,
    pub min_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// 1.0 disables it.
    pub repetition_penalty: f32,
    pub seed: Option<u64>,
    pub max_tokens: usize,
    /// EOS and stop ids are ignored until this many tokens were generated.
    pub min_tokens: usize,
    pub ignore_eos: bool,
    /// Stop strings; matched on the detokenized text, across token boundaries, and
    /// never included in the output.
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<u32>,
    /// Number of top alternatives to report per token (None: no logprobs).
    pub logprobs: Option<usize>,
    /// Structured output: only tokens the constraint allows are sampled, and the
    /// sequence stops (reason Stop) once the constrained output is complete.
    pub constraint: Option<SharedConstraint>,
    /// Added to a token's logit before sampling (OpenAI's `logit_bias`).
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: 1.0,
            seed: None,
            max_tokens: 16,
            min_tokens: 0,
            ignore_eos: false,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            logprobs: None,
            constraint: None,
            logit_bias: Vec::new(),
        }
    }
}

/// A tokenized request.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt_ids: Vec<u32>,
    pub params: SamplingParams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS token, stop string or stop id.
    Stop,
    /// max_tokens reached, or the context is full.
    Length,
    /// The caller went away or asked to stop.
    Abort,
}

impl FinishReason {
    pub fn as_openai(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache (not recomputed).
    pub cached_prompt_tokens: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token_id: u32,
    pub logprob: f32,
    /// The `logprobs` most likely alternatives, best first.
    pub top: Vec<(u32, f32)>,
}

/// What a request's stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// New text (may be empty while a stop string or a UTF-8 sequence is pending) and
    /// the tokens that produced it.
    Delta {
        text: String,
        token_ids: Vec<u32>,
        logprobs: Vec<TokenLogprob>,
    },
    /// Always the last event of a stream.
    Finished { reason: FinishReason, usage: Usage },
    /// The request failed inside the engine; also the last event.
    Error(String),
}
