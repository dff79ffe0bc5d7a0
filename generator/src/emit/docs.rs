//! Doc comments from spec text.
//!
//! Descriptions are markdown written for other renderers. Two things in them would
//! break a generated crate's tests: indented blocks and unlabelled fences, which rustdoc
//! compiles as Rust. So indentation outside fences is dropped and fences without a
//! language are labelled `text`; everything else is kept as written.

use proc_macro2::TokenStream;
use quote::quote;

/// `#[doc]` attributes (outer) for `text`, one per line.
pub fn doc_attrs(text: &str) -> TokenStream {
    let lines = clean(text);
    quote! { #( #[doc = #lines] )* }
}

/// `#![doc]` attributes (inner) for `text`.
pub(crate) fn inner_doc_attrs(text: &str) -> TokenStream {
    let lines = clean(text);
    quote! { #( #![doc = #lines] )* }
}

/// The lines of `text` made safe for rustdoc, each with a leading space so they render
/// as `/// text`.
pub(crate) fn clean(text: &str) -> Vec<String> {
    let text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\t', "    ");
    let mut out: Vec<String> = Vec::new();
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (&fence, marker) {
            (None, Some(marker)) => {
                let info = trimmed
                    .trim_start_matches(marker.chars().next().unwrap_or('`'))
                    .trim();
                let rusty = info.is_empty()
                    || info.starts_with("rust")
                    || !info.chars().any(char::is_alphabetic);
                let info = if rusty { "text" } else { info };
                out.push(format!("{marker}{info}"));
                fence = Some(marker.to_owned());
            }
            (Some(open), Some(marker)) if open == marker => {
                out.push(marker.to_owned());
                fence = None;
            }
            (Some(_), _) => out.push(line.trim_end().to_owned()),
            (None, None) => out.push(trimmed.trim_end().to_owned()),
        }
    }
    if let Some(open) = fence {
        out.push(open);
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    while out.first().is_some_and(String::is_empty) {
        out.remove(0);
    }
    out.into_iter()
        .map(|line| {
            if line.is_empty() {
                line
            } else {
                format!(" {line}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_code_and_bare_fences_never_become_doctests() {
        let lines = clean("Intro\n\n    let x = 1;\n```\ncode\n```\n```json\n{}\n```\n");
        assert_eq!(
            lines,
            [
                " Intro",
                "",
                " let x = 1;",
                " ```text",
                " code",
                " ```",
                " ```json",
                " {}",
                " ```"
            ]
        );
    }

    #[test]
    fn unclosed_fences_are_closed() {
        assert_eq!(clean("```\nx"), [" ```text", " x", " ```"]);
    }
}
