//! Structured-output constraints in the engine: a request carries one compiled
//! `Constraint`; each of its sequences advances its own clone.

use std::sync::Arc;

use hearth_text::{Constraint, TokenMask};

/// A compiled constraint shared by a request's sequences (compiled once, outside the
/// engine thread, so a slow schema never stalls the batch).
#[derive(Clone)]
pub struct SharedConstraint(Arc<Constraint>);

impl SharedConstraint {
    pub fn new(constraint: Constraint) -> SharedConstraint {
        SharedConstraint(Arc::new(constraint))
    }

    /// A sequence's own matcher, at the start of the output.
    pub fn start(&self) -> Constraint {
        (*self.0).clone()
    }
}

impl std::fmt::Debug for SharedConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedConstraint")
    }
}

/// Two params are equal only when they share the same compiled constraint.
impl PartialEq for SharedConstraint {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The mask for a sequence's next token, or why there is none.
pub fn next_mask(c: Option<&mut Constraint>) -> Result<Option<TokenMask>, String> {
    match c {
        None => Ok(None),
        Some(c) => c.mask().map(Some).map_err(|e| e.to_string()),
    }
}

/// Advances the sequence's matcher past `token`; returns whether the constrained
/// output is now complete (the sequence should stop).
pub fn advance(c: Option<&mut Constraint>, token: u32) -> Result<bool, String> {
    match c {
        None => Ok(false),
        Some(c) => {
            c.accept(token).map_err(|e| e.to_string())?;
            Ok(c.is_finished())
        }
    }
}
