//! Diagnostics: what the generator noticed and worked around, collected and reported
//! together at the end of a run.

use std::fmt;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Generation went on with a fallback (usually `serde_json::Value`).
    Warning,
    /// Generation cannot produce a usable client.
    Error,
}

/// One finding, located by a JSON pointer into the spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// Where in the document (`#/components/schemas/Pet/properties/tag`).
    pub pointer: String,
    /// What happened, in lowercase.
    pub message: String,
}

impl Diagnostic {
    /// A warning at `pointer`.
    pub fn warning(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    /// An error at `pointer`.
    pub fn error(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{level}: {}: {}", self.pointer, self.message)
    }
}
