//! Structured-output constraints (llguidance): a `ConstraintSpec` (JSON schema, regex,
//! choice, Lark grammar) is compiled against the model's vocabulary into a per-request
//! `Constraint` that gives the allowed-token mask for the next position.
//!
//! Use: build one `ConstraintCompiler::new(&tokenizer)` per model (it indexes the
//! vocabulary once), then per request `compiler.compile(&spec)?` (bad schemas, regexes
//! and grammars are `TextError::Constraint`). Each sequence works on its own clone:
//! `mask()` before sampling, `accept(token)` after, and `is_finished()` once nothing but
//! EOS may follow.

mod compiler;
mod matcher;
mod spec;
mod vocab;

#[cfg(test)]
mod tests;

pub use compiler::ConstraintCompiler;
pub use matcher::{Constraint, TokenMask};
pub use spec::ConstraintSpec;
