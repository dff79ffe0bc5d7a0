//! The `types` module: one Rust item per named type.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::emit::docs::{doc_attrs, inner_doc_attrs};
use crate::emit::{doc_lint_allows, ident, type_tokens};
use crate::ir::{Api, Field, Struct, TypeDef, TypeKind, TypeRef, Union};

/// The whole `types` module.
pub(super) fn module(api: &Api) -> TokenStream {
    let docs = inner_doc_attrs(&format!(
        "Types of the {} API: request and response bodies and their parts.\n\n\
         Strings with a `format` (`date-time`, `uuid`, ...) stay `String`, so no date or \
         UUID crate is forced on users; the format is noted on the field.",
        api.title
    ));
    let lints = doc_lint_allows();
    let items = api.types.iter().map(item);
    let needs_helper = api.types.iter().any(|t| match &t.kind {
        TypeKind::Struct(s) => s.fields.iter().any(double_option),
        _ => false,
    });
    let helper = needs_helper.then(|| {
        quote! {
            /// Reads a present value, `null` included, as `Some`, so that a missing field
            /// (`None`) and an explicit `null` (`Some(None)`) stay apart.
            fn deserialize_some<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
            where
                T: serde::Deserialize<'de>,
                D: serde::Deserializer<'de>,
            {
                T::deserialize(deserializer).map(Some)
            }
        }
    });
    quote! {
        #docs
        #lints
        #![allow(
            clippy::large_enum_variant,
            clippy::enum_variant_names,
            reason = "variants mirror the API's schemas, whatever their sizes and names"
        )]
        #(#items)*
        #helper
    }
}

fn item(def: &TypeDef) -> TokenStream {
    let docs = match &def.doc {
        Some(doc) => doc_attrs(doc),
        None => doc_attrs(&format!("`{}` in the API description.", def.pointer)),
    };
    let name = ident(&def.name);
    match &def.kind {
        TypeKind::Struct(s) => structure(&docs, &name, s),
        TypeKind::StringEnum(values) => string_enum(&docs, &name, values),
        TypeKind::IntEnum(values) => int_enum(&docs, &name, values),
        TypeKind::Union(u) => union(&docs, &name, u),
        TypeKind::Alias(ty) => {
            let ty = type_tokens(ty, &TokenStream::new());
            quote! { #docs pub type #name = #ty; }
        }
    }
}

/// Optional and nullable: kept apart as `Option<Option<T>>`.
fn double_option(field: &Field) -> bool {
    !field.required && field.nullable && field.ty != TypeRef::Any
}

fn structure(docs: &TokenStream, name: &proc_macro2::Ident, s: &Struct) -> TokenStream {
    let defaultable = s
        .fields
        .iter()
        .all(|f| !f.required || f.nullable || defaultable(&f.ty));
    let default = defaultable.then(|| quote!(Default,));
    let fields = s.fields.iter().map(field);
    let additional = s.additional.as_ref().map(|(field, ty)| {
        let field = ident(field);
        let ty = type_tokens(ty, &TokenStream::new());
        quote! {
            /// Properties not listed above.
            #[serde(flatten)]
            pub #field: std::collections::BTreeMap<String, #ty>,
        }
    });
    quote! {
        #docs
        #[derive(Debug, Clone, PartialEq, #default serde::Serialize, serde::Deserialize)]
        pub struct #name {
            #(#fields)*
            #additional
        }
    }
}

fn defaultable(ty: &TypeRef) -> bool {
    matches!(
        ty,
        TypeRef::Primitive(_)
            | TypeRef::Array(_)
            | TypeRef::Map(_)
            | TypeRef::Option(_)
            | TypeRef::Any
    )
}

fn field(field: &Field) -> TokenStream {
    let name = ident(&field.ident);
    let inner = type_tokens(&field.ty, &TokenStream::new());
    let mut doc = field.doc.clone().unwrap_or_default();
    if let TypeRef::Primitive(crate::ir::Primitive::String(Some(format))) = &field.ty {
        if !doc.is_empty() {
            doc.push_str("\n\n");
        }
        doc.push_str(&format!("Format: `{format}`."));
    }
    let docs = doc_attrs(&doc);
    let rename = (crate::naming::bare(&field.ident) != field.name).then(|| {
        let wire = &field.name;
        quote!(#[serde(rename = #wire)])
    });
    let (ty, attrs) = if double_option(field) {
        (
            quote!(Option<Option<#inner>>),
            quote!(#[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "deserialize_some")]),
        )
    } else if !field.required {
        (
            quote!(Option<#inner>),
            quote!(#[serde(default, skip_serializing_if = "Option::is_none")]),
        )
    } else if field.nullable && field.ty != TypeRef::Any {
        (quote!(Option<#inner>), TokenStream::new())
    } else {
        (inner, TokenStream::new())
    };
    quote! {
        #docs
        #rename
        #attrs
        pub #name: #ty,
    }
}

/// A string enum with a catch-all. Serde impls are written out rather than derived: a
/// derived catch-all needs serde's buffering machinery per enum, which dominated compile
/// time on APIs with thousands of enums.
fn string_enum(
    docs: &TokenStream,
    name: &proc_macro2::Ident,
    values: &[crate::ir::EnumValue],
) -> TokenStream {
    let variants = values.iter().map(|v| {
        let variant = ident(&v.ident);
        let doc = format!(" `{}`", v.value);
        quote! {
            #[doc = #doc]
            #variant,
        }
    });
    let to_str = values.iter().map(|v| {
        let variant = ident(&v.ident);
        let wire = &v.value;
        quote!(Self::#variant => #wire,)
    });
    let from_str = values.iter().map(|v| {
        let variant = ident(&v.ident);
        let wire = &v.value;
        quote!(#wire => Self::#variant,)
    });
    quote! {
        #docs
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum #name {
            #(#variants)*
            /// A value this client does not know yet.
            Other(String),
        }

        impl #name {
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    #(#to_str)*
                    Self::Other(other) => other,
                }
            }
        }

        impl From<String> for #name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    #(#from_str)*
                    _ => Self::Other(value),
                }
            }
        }

        impl std::fmt::Display for #name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for #name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for #name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(deserializer).map(Self::from)
            }
        }
    }
}

fn int_enum(docs: &TokenStream, name: &proc_macro2::Ident, values: &[i64]) -> TokenStream {
    let constants = values.iter().map(|v| {
        let constant = if *v < 0 {
            format_ident!("VMINUS_{}", v.unsigned_abs())
        } else {
            format_ident!("V{}", v.unsigned_abs())
        };
        let doc = format!(" The value `{v}`.");
        quote! {
            #[doc = #doc]
            pub const #constant: Self = Self(#v);
        }
    });
    quote! {
        #docs
        ///
        /// Any integer decodes; the known values are associated constants.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct #name(pub i64);

        impl #name {
            #(#constants)*
        }

        impl std::fmt::Display for #name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    }
}

fn union(docs: &TokenStream, name: &proc_macro2::Ident, u: &Union) -> TokenStream {
    let variants = u.variants.iter().map(|v| {
        let variant = ident(&v.ident);
        let ty = type_tokens(&v.ty, &TokenStream::new());
        quote!(#variant(#ty),)
    });
    let Some(tag) = &u.tag else {
        return quote! {
            #docs
            ///
            /// Untagged: variants are tried in order, most specific first.
            #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
            #[serde(untagged)]
            pub enum #name {
                #(#variants)*
            }
        };
    };
    let mut seen = std::collections::BTreeSet::new();
    let arms = u.variants.iter().filter_map(|v| {
        let variant = ident(&v.ident);
        let tags: Vec<&String> = v.tags.iter().filter(|t| seen.insert(t.as_str())).collect();
        if tags.is_empty() {
            return None;
        }
        Some(quote! {
            #(Some(#tags))|* => serde_json::from_value(value)
                .map(Self::#variant)
                .map_err(serde::de::Error::custom),
        })
    });
    let tag_doc = format!(" Tagged by the `{tag}` property; an unknown tag decodes as `Unknown`.");
    quote! {
        #docs
        ///
        #[doc = #tag_doc]
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum #name {
            #(#variants)*
            /// A variant this client does not know yet.
            Unknown(serde_json::Value),
        }

        impl<'de> serde::Deserialize<'de> for #name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
                let tag = value.get(#tag).and_then(serde_json::Value::as_str).map(str::to_owned);
                match tag.as_deref() {
                    #(#arms)*
                    _ => Ok(Self::Unknown(value)),
                }
            }
        }
    }
}
