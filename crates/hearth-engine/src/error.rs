use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    #[error("prompt is empty")]
    EmptyPrompt,
    #[error("this model's maximum context length is {max} tokens, but the request needs {requested} ({prompt} prompt + {max_tokens} max_tokens)")]
    ContextTooLong {
        max: usize,
        requested: usize,
        prompt: usize,
        max_tokens: usize,
    },
    #[error("the request needs {needed} KV blocks but the cache only has {total}")]
    TooLargeForCache { needed: usize, total: usize },
    #[error("server overloaded: {0} requests waiting")]
    Overloaded(usize),
    #[error("invalid sampling parameter: {0}")]
    InvalidParams(String),
    #[error("engine stopped")]
    Stopped,
    #[error("model failure: {0}")]
    Model(String),
}
