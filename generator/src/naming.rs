//! Rust names from spec names: case conversion, keyword escaping and de-duplication.
//!
//! Every name that reaches `proc_macro2::Ident` passes through here, so identifiers are
//! always valid: only ASCII letters, digits and `_`, never starting with a digit, keywords
//! as raw identifiers (`r#type`) or with a trailing `_` where raw is not allowed (`self_`).

use std::collections::BTreeSet;

use heck::{ToSnakeCase, ToUpperCamelCase};

/// Keywords that can be raw identifiers.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "union", "unsafe", "unsized",
    "use", "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Type names that would shadow what generated code uses unqualified.
const RESERVED_TYPES: &[&str] = &[
    "Box", "Err", "None", "Ok", "Option", "Result", "Self", "Some", "String", "Vec",
];

/// Replaces characters that carry meaning but vanish in case conversion (`+1`, `-1`).
fn prepare(raw: &str) -> String {
    let raw = raw.trim();
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.chars().enumerate() {
        match c {
            '+' => out.push_str(" plus "),
            '-' if i == 0 => out.push_str("minus "),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => out.push(' '),
        }
    }
    out
}

/// A snake-case identifier (`petId` to `pet_id`, `type` to `r#type`).
pub fn snake(raw: &str) -> String {
    let mut name = prepare(raw).to_snake_case();
    if name.is_empty() {
        name = "value".into();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    escape_keyword(name)
}

/// An upper-camel-case type name (`pet_status` to `PetStatus`).
pub fn camel(raw: &str) -> String {
    let mut name = prepare(raw).to_upper_camel_case();
    if name.is_empty() {
        name = "Value".into();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'V');
    }
    if RESERVED_TYPES.contains(&name.as_str()) {
        name.push_str("Type");
    }
    escape_keyword(name)
}

/// Escapes a keyword: `r#type`, or `self_` where raw identifiers are not allowed.
fn escape_keyword(name: String) -> String {
    if NOT_RAW.contains(&name.as_str()) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name.as_str()) {
        format!("r#{name}")
    } else {
        name
    }
}

/// An identifier without a raw prefix, for building other names from it.
pub fn bare(ident: &str) -> &str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

/// Hands out names unique within one scope, adding `2`, `3`, ... on collisions.
#[derive(Debug, Clone, Default)]
pub struct Namer {
    taken: BTreeSet<String>,
}

impl Namer {
    /// A namer with `names` already taken.
    pub fn with_taken<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            taken: names.into_iter().map(str::to_owned).collect(),
        }
    }

    /// `name`, or `name2`, `name3`, ... (`name_2` for snake-case names) when taken.
    pub fn unique(&mut self, name: &str) -> String {
        if self.taken.insert(name.to_owned()) {
            return name.to_owned();
        }
        let base = bare(name);
        let separator = if base.contains(|c: char| c.is_ascii_uppercase()) {
            ""
        } else {
            "_"
        };
        (2..)
            .map(|n| format!("{base}{separator}{n}"))
            .find(|candidate| self.taken.insert(candidate.clone()))
            .unwrap_or_default()
    }

    /// Whether `name` is taken.
    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_escapes_keywords_and_digits() {
        assert_eq!(snake("petId"), "pet_id");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("self"), "self_");
        assert_eq!(snake("+1"), "plus_1");
        assert_eq!(snake("-1"), "minus_1");
        assert_eq!(snake("2fa"), "_2fa");
        assert_eq!(snake("$$$"), "value");
        assert_eq!(snake("ünïcode"), "n_code");
    }

    #[test]
    fn camel_case_avoids_prelude_names() {
        assert_eq!(camel("pet_status"), "PetStatus");
        assert_eq!(camel("Option"), "OptionType");
        assert_eq!(camel("self"), "SelfType");
        assert_eq!(camel("3d-secure"), "V3dSecure");
    }

    #[test]
    fn namer_deduplicates() {
        let mut namer = Namer::default();
        assert_eq!(namer.unique("Pet"), "Pet");
        assert_eq!(namer.unique("Pet"), "Pet2");
        assert_eq!(namer.unique("r#type"), "r#type");
        assert_eq!(namer.unique("r#type"), "type_2");
    }
}
