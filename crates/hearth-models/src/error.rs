use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("invalid model file: {0}")]
    Invalid(String),
    #[error("integrity check failed for {path}: expected sha256 {expected}, got {actual}")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("bad batch: {0}")]
    BadBatch(String),
    /// A setting that cannot work (e.g. a GPU memory share that leaves no KV cache).
    #[error("{0}")]
    Setting(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;
