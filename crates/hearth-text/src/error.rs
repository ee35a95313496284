//! Errors of the text layer.

/// Anything that can go wrong turning text into ids and back.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A metadata key the tokenizer or template needs is absent.
    #[error("GGUF metadata is missing `{0}`")]
    MissingMetadata(String),
    /// A metadata key is present but has the wrong type or an impossible value.
    #[error("GGUF metadata `{key}` is invalid: {reason}")]
    InvalidMetadata { key: String, reason: String },
    /// A tokenizer kind or feature hearth does not implement yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The HF tokenizers crate failed (building, encoding or decoding).
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// A file could not be read (or is not GGUF).
    #[error("io: {0}")]
    Io(String),
    /// A chat template failed to compile or render.
    #[error("chat template error: {0}")]
    Template(String),
    /// A structured-output constraint (schema, regex, grammar) is invalid or failed.
    #[error("invalid constraint: {0}")]
    Constraint(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TextError>;

impl From<tokenizers::Error> for TextError {
    fn from(e: tokenizers::Error) -> Self {
        TextError::Tokenizer(e.to_string())
    }
}

impl From<minijinja::Error> for TextError {
    fn from(e: minijinja::Error) -> Self {
        // Keep the chain: minijinja puts the template line in the source error.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        TextError::Template(msg)
    }
}
