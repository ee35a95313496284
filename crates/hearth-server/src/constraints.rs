//! The model's llguidance compiler, shared by every request (tool calls forced by
//! `tool_choice`, structured outputs). Indexing the vocabulary takes a moment, so it
//! is built on first use, once.

use std::sync::{Arc, OnceLock};

use hearth_engine::SharedConstraint;
use hearth_text::{ConstraintCompiler, ConstraintSpec, TextError, Tokenizer};

use crate::error::ApiError;

pub struct Constraints {
    tokenizer: Arc<Tokenizer>,
    compiler: OnceLock<Result<ConstraintCompiler, String>>,
}

impl Constraints {
    pub fn new(tokenizer: Arc<Tokenizer>) -> Self {
        Constraints {
            tokenizer,
            compiler: OnceLock::new(),
        }
    }

    /// Compiles `spec` for the engine; an invalid schema or grammar is a 400 on
    /// `param`, a vocabulary llguidance cannot index a 500.
    pub fn compile(
        &self,
        spec: &ConstraintSpec,
        param: &str,
    ) -> Result<SharedConstraint, ApiError> {
        let compiler = self
            .compiler
            .get_or_init(|| ConstraintCompiler::new(&self.tokenizer).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| {
                ApiError::internal(format!("constraints unavailable for this model: {e}"))
            })?;
        match compiler.compile(spec) {
            Ok(c) => Ok(SharedConstraint::new(c)),
            Err(e @ (TextError::Constraint(_) | TextError::Unsupported(_))) => {
                Err(ApiError::invalid_param(param, e.to_string()))
            }
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }
}
