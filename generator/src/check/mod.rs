//! Checks on the IR before emission: names the user chose must be usable, and problems
//! are collected so that one run reports all of them.
//!
//! [`annotations`] checks the annotations file against the lowered spec: every name it
//! uses must exist there.

mod annotations;

pub use annotations::annotations;

use crate::diagnostic::Diagnostic;
use crate::ir::Api;

/// Checks `api`; errors make generation fail, warnings are reported.
pub fn check(api: &Api) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let service = &api.service;
    if !is_identifier(&service.client)
        || !service.client.starts_with(|c: char| c.is_ascii_uppercase())
    {
        out.push(Diagnostic::error(
            "service.client",
            format!(
                "client name `{}` is not an upper-camel-case Rust identifier",
                service.client
            ),
        ));
    }
    let crate_ok = !service.crate_name.is_empty()
        && service
            .crate_name
            .starts_with(|c: char| c.is_ascii_alphabetic())
        && service
            .crate_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !crate_ok {
        out.push(Diagnostic::error(
            "service.crate",
            format!(
                "crate name `{}` is not a valid package name",
                service.crate_name
            ),
        ));
    }
    if !is_identifier(&service.name.replace('-', "_")) {
        out.push(Diagnostic::error(
            "service.name",
            format!("service name `{}` cannot be a module name", service.name),
        ));
    }
    if api.operations.is_empty() {
        out.push(Diagnostic::warning(
            "#/paths",
            "the document has no operations",
        ));
    }
    out
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
