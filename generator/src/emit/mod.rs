//! Emission: IR to token streams, one per module of the generated client.
//!
//! Only tokens are made here; turning them into text and files happens in
//! [`crate::render`] and [`crate::write`]. Generated code refers to other modules by
//! relative paths (`super::types::Pet`) and to dependencies by full paths
//! (`polvo_runtime::Request`), so the same tokens work as a crate and as a module
//! included from `OUT_DIR`.

mod client;
mod docs;
mod policy;
mod resources;
mod types;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::ir::{Api, Primitive, TypeRef};

pub use docs::doc_attrs;

/// The modules of a generated client.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// Crate documentation lines (crate mode only).
    pub crate_doc: Vec<String>,
    /// Items of the root module (re-exports).
    pub root: TokenStream,
    /// The `types` module.
    pub types: TokenStream,
    /// The `client` module.
    pub client: TokenStream,
    /// The `resources` module's own items.
    pub resources: TokenStream,
    /// One module per resource group: module name and items.
    pub groups: Vec<(String, TokenStream)>,
}

/// Emits every module of `api`.
pub fn emit(api: &Api) -> Emitted {
    let groups = resources::groups(api);
    let client_name = ident(&api.service.client);
    let builder_name = ident(&format!("{}Builder", api.service.client));
    Emitted {
        crate_doc: client::crate_doc(api),
        root: quote! {
            pub use client::{#client_name, #builder_name};
            pub use polvo_runtime;
            pub use polvo_runtime::Error;
        },
        types: types::module(api),
        client: client::module(api),
        resources: resources::root(api),
        groups,
    }
}

/// An identifier from a name made by [`crate::naming`] (raw when it starts with `r#`).
pub(crate) fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(name, Span::call_site()),
    }
}

/// The module name of a resource group (`type` becomes `type_`, as modules map to files).
pub(crate) fn group_module(group: &str) -> String {
    let name = crate::naming::snake(group);
    match name.strip_prefix("r#") {
        Some(raw) => format!("{raw}_"),
        None => name,
    }
}

/// The Rust type for `ty`; named types are prefixed with `types` (a path to the types
/// module, empty inside it).
pub(crate) fn type_tokens(ty: &TypeRef, types: &TokenStream) -> TokenStream {
    match ty {
        TypeRef::Named(name) => {
            let name = ident(name);
            quote!(#types #name)
        }
        TypeRef::Primitive(p) => primitive_tokens(p),
        TypeRef::Array(inner) => {
            let inner = type_tokens(inner, types);
            quote!(Vec<#inner>)
        }
        TypeRef::Map(inner) => {
            let inner = type_tokens(inner, types);
            quote!(std::collections::BTreeMap<String, #inner>)
        }
        TypeRef::Option(inner) => {
            let inner = type_tokens(inner, types);
            quote!(Option<#inner>)
        }
        TypeRef::Box(inner) => {
            let inner = type_tokens(inner, types);
            quote!(Box<#inner>)
        }
        TypeRef::Any => quote!(serde_json::Value),
    }
}

fn primitive_tokens(p: &Primitive) -> TokenStream {
    match p {
        Primitive::String(_) => quote!(String),
        Primitive::I32 => quote!(i32),
        Primitive::I64 => quote!(i64),
        Primitive::U32 => quote!(u32),
        Primitive::U64 => quote!(u64),
        Primitive::F32 => quote!(f32),
        Primitive::F64 => quote!(f64),
        Primitive::Bool => quote!(bool),
    }
}

/// Lints the spec's text can trip in generated docs; allowed with the reason.
pub(crate) fn doc_lint_allows() -> TokenStream {
    quote! {
        #![allow(
            clippy::doc_lazy_continuation,
            clippy::doc_overindented_list_items,
            clippy::tabs_in_doc_comments,
            clippy::too_long_first_doc_paragraph,
            rustdoc::bare_urls,
            rustdoc::broken_intra_doc_links,
            rustdoc::invalid_html_tags,
            rustdoc::invalid_rust_codeblocks,
            reason = "doc comments carry the API description's markdown as written"
        )]
    }
}
