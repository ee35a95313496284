//! `ConstraintCompiler`: built once per model, compiles specs into matchers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use llguidance::{Matcher, ParserFactory};

use super::matcher::Constraint;
use super::spec::ConstraintSpec;
use super::vocab;
use crate::error::{Result, TextError};
use crate::gguf_tokenizer::Tokenizer;

/// Holds the vocabulary index (the slow part) shared by every request of one model.
#[derive(Clone)]
pub struct ConstraintCompiler {
    factory: Arc<ParserFactory>,
    vocab_size: usize,
}

impl std::fmt::Debug for ConstraintCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintCompiler")
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}

impl ConstraintCompiler {
    pub fn new(tok: &Tokenizer) -> Result<ConstraintCompiler> {
        let env = guard(|| vocab::tok_env(tok))?;
        let vocab_size = env.tok_trie().vocab_size();
        let mut factory = guard(|| {
            ParserFactory::new_simple(&env)
                .map_err(|e| TextError::Unsupported(format!("constraint vocabulary: {e}")))
        })?;
        // Grammar errors go back to the client; llguidance need not print them too.
        factory.quiet();
        Ok(ConstraintCompiler {
            factory: Arc::new(factory),
            vocab_size,
        })
    }

    /// Number of token ids the masks cover.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// A fresh matcher for `spec`; invalid schemas, regexes and grammars are errors.
    pub fn compile(&self, spec: &ConstraintSpec) -> Result<Constraint> {
        let grammar = spec.to_grammar()?;
        let parser = guard(|| {
            self.factory
                .create_parser(grammar)
                .map_err(|e| TextError::Constraint(e.to_string()))
        })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(TextError::Constraint(e));
        }
        Ok(Constraint::new(matcher, self.vocab_size))
    }
}

/// llguidance reports bad input as errors; a panic inside it still must not take the
/// server down, so it becomes an error too.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(TextError::Constraint(
            "the constraint compiler failed on this input".into(),
        ))
    })
}
