//! The `resources` module: one handle per resource group, one method per operation and
//! request media type, plus the parameter structs and response enums they need.

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::quote;

use crate::emit::docs::{doc_attrs, inner_doc_attrs};
use crate::emit::{doc_lint_allows, group_module, ident, type_tokens};
use crate::ir::{
    Api, CursorFrom, Encoding, Operation, Paging, PagingScheme, Param, ParamLocation, ParamStyle,
    PartKind, RequestBody, Status, TypeDef, TypeKind, TypeRef,
};
use crate::naming::{Namer, bare, camel};

/// The `resources` module's own items.
pub(super) fn root(api: &Api) -> TokenStream {
    let docs = inner_doc_attrs(
        "Resource handles: one per tag (or first path segment), each reached from the \
         client by a method of the same name, with one method per operation.",
    );
    let needs_content_type = api
        .operations
        .iter()
        .any(|op| by_content_type(&success_shapes(op)));
    let helper = needs_content_type.then(|| {
        quote! {
            /// The response's media type, lower-cased, without parameters.
            fn content_type(response: &polvo_runtime::Response) -> String {
                let value = response.headers().get("content-type").and_then(|v| v.to_str().ok());
                let essence = value.unwrap_or_default().split(';').next().unwrap_or_default();
                essence.trim().to_ascii_lowercase()
            }
        }
    });
    quote! {
        #docs
        #helper
    }
}

/// One module per group, sorted by name.
pub(super) fn groups(api: &Api) -> Vec<(String, TokenStream)> {
    let defs: BTreeMap<&str, &TypeDef> = api.types.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut by_group: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &api.operations {
        by_group.entry(op.group.as_str()).or_default().push(op);
    }
    by_group
        .into_iter()
        .map(|(group, ops)| {
            (
                group_module(group),
                group_module_tokens(api, &defs, group, &ops),
            )
        })
        .collect()
}

/// The handle type's name for a group.
pub(crate) fn handle_name(group: &str) -> String {
    bare(&camel(group)).to_owned()
}

fn group_module_tokens(
    api: &Api,
    defs: &BTreeMap<&str, &TypeDef>,
    group: &str,
    ops: &[&Operation],
) -> TokenStream {
    let handle = handle_name(group);
    let mut methods = BTreeSet::new();
    for op in ops {
        methods.insert(op.name.clone());
        methods.extend(op.bodies.iter().map(|b| b.method.clone()));
        methods.extend(op.paging.iter().map(|p| p.method.clone()));
    }
    let mut group = Group {
        defs,
        types: quote!(super::super::types::),
        namer: Namer::with_taken([handle.as_str()]),
        items: Vec::new(),
        handle: handle.clone(),
        methods,
    };
    let methods: Vec<TokenStream> = ops.iter().map(|op| group.operation(op)).collect();
    let items = &group.items;
    let handle = ident(&handle);
    let client = &api.service.client;
    let module_doc = inner_doc_attrs(&format!(
        "Operations of the `{}` group.",
        ops.first().map_or("", |o| o.group.as_str())
    ));
    let handle_doc = doc_attrs(&format!(
        "Operations of the `{}` group; from [`{client}`](super::super::client::{client}).",
        ops.first().map_or("", |o| o.group.as_str())
    ));
    let lints = doc_lint_allows();
    quote! {
        #module_doc
        #lints
        #![allow(
            clippy::too_many_arguments,
            clippy::large_enum_variant,
            reason = "methods take one argument per required parameter, as the API lists them"
        )]

        #handle_doc
        #[derive(Debug, Clone, Copy)]
        pub struct #handle<'a> {
            client: &'a polvo_runtime::Client,
        }

        impl<'a> #handle<'a> {
            pub(crate) fn new(client: &'a polvo_runtime::Client) -> Self {
                Self { client }
            }

            #(#methods)*
        }

        #(#items)*
    }
}

/// What a successful response can be.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Json(TypeRef),
    Text,
    Bytes,
    Empty,
}

/// Success responses: status, media type and shape, in document order. When every
/// success has the same shape, one entry is left; its media type is `None` when some
/// success status has no body, which makes the result an `Option`.
fn success_shapes(op: &Operation) -> Vec<(Status, Option<String>, Shape)> {
    let mut all = Vec::new();
    for response in op.responses.iter().filter(|r| r.status.is_success()) {
        if response.contents.is_empty() {
            all.push((response.status, None, Shape::Empty));
        }
        for content in &response.contents {
            let shape = match content.encoding {
                Encoding::Json => Shape::Json(content.ty.clone()),
                Encoding::Text => Shape::Text,
                _ => Shape::Bytes,
            };
            all.push((response.status, Some(content.media_type.clone()), shape));
        }
    }
    let bodies: BTreeSet<&Shape> = all
        .iter()
        .map(|(_, _, s)| s)
        .filter(|s| **s != Shape::Empty)
        .collect();
    match bodies.len() {
        0 => all.into_iter().take(1).collect(),
        1 => {
            let has_empty = all.iter().any(|(_, _, s)| *s == Shape::Empty);
            all.into_iter()
                .find(|(_, _, s)| *s != Shape::Empty)
                .map(|(status, media, shape)| (status, media.filter(|_| !has_empty), shape))
                .into_iter()
                .collect()
        }
        _ => all,
    }
}

/// Whether a status has several media types, so decoding must look at `Content-Type`.
fn by_content_type(shapes: &[(Status, Option<String>, Shape)]) -> bool {
    shapes.len() > 1
        && shapes
            .iter()
            .any(|(s, _, _)| shapes.iter().filter(|(t, _, _)| t == s).count() > 1)
}

/// What every method of one operation shares.
struct Signature<'a> {
    params: Option<&'a proc_macro2::Ident>,
    ret: &'a TokenStream,
    decode: &'a TokenStream,
    errors: Option<&'a str>,
    multipart: Option<&'a proc_macro2::Ident>,
}

struct Group<'a> {
    defs: &'a BTreeMap<&'a str, &'a TypeDef>,
    types: TokenStream,
    namer: Namer,
    items: Vec<TokenStream>,
    handle: String,
    /// Every method name of the handle, so bulk forms do not take one.
    methods: BTreeSet<String>,
}

/// One argument of a method: its declaration, and for the bulk form the owned type an
/// item carries and whether the method takes it by reference.
struct Arg {
    name: proc_macro2::Ident,
    ty: TokenStream,
    owned: TokenStream,
    by_ref: bool,
}

impl Arg {
    /// An argument the method takes, and a bulk item carries, as it is.
    fn by_value(name: proc_macro2::Ident, ty: TokenStream) -> Self {
        Self {
            name,
            owned: ty.clone(),
            ty,
            by_ref: false,
        }
    }

    /// An argument the method borrows (`ty`) from a value a bulk item owns (`owned`).
    fn borrowed(name: proc_macro2::Ident, ty: TokenStream, owned: TokenStream) -> Self {
        Self {
            name,
            ty,
            owned,
            by_ref: true,
        }
    }

    fn declaration(&self) -> TokenStream {
        let (name, ty) = (&self.name, &self.ty);
        quote!(#name: #ty)
    }
}

impl Group<'_> {
    /// All methods of one operation (one per request media type).
    fn operation(&mut self, op: &Operation) -> TokenStream {
        let optional: Vec<&Param> = op.params.iter().filter(|p| !p.required).collect();
        let params_struct = (!optional.is_empty()).then(|| self.params_struct(op, &optional));
        let (ret, decode) = self.response(op);
        let errors = self.errors(op);
        let multipart = op
            .bodies
            .iter()
            .find(|b| b.encoding == Encoding::Multipart && !b.parts.is_empty())
            .map(|b| self.multipart_struct(op, b));
        let signature = Signature {
            params: params_struct.as_ref(),
            ret: &ret,
            decode: &decode,
            errors: errors.as_deref(),
            multipart: multipart.as_ref(),
        };
        let pages = op
            .paging
            .as_ref()
            .map(|paging| self.pages_method(op, paging, &signature));
        let variants: Vec<(&str, Option<&RequestBody>)> = match op.bodies.as_slice() {
            [] => vec![(op.name.as_str(), None)],
            bodies => bodies
                .iter()
                .map(|b| (b.method.as_str(), Some(b)))
                .collect(),
        };
        let methods = variants.iter().map(|&(name, body)| {
            let (args, chain) = self.request(op, body, &signature);
            let bulk = self.bulk_method(op, name, &signature, &args);
            let method = self.method(op, name, body, &signature, (&args, chain));
            quote!(#method #bulk)
        });
        let methods: Vec<TokenStream> = methods.collect();
        quote!(#(#methods)* #pages)
    }

    /// The bulk form of a method: one call per item, through the runtime's bulk engine,
    /// each item holding the method's arguments as owned values. An operation without
    /// arguments has none, nor has one whose `bulk_` name another method already took.
    fn bulk_method(
        &self,
        op: &Operation,
        name: &str,
        signature: &Signature<'_>,
        args: &[Arg],
    ) -> Option<TokenStream> {
        let bulk_name = format!("bulk_{}", bare(name));
        if self.methods.contains(&bulk_name) {
            return None;
        }
        // Inside the closure the arguments are fields of `item`, never bound to their own
        // names, which could be `client` or `item` themselves.
        let (item, fields): (TokenStream, Vec<TokenStream>) = match args {
            [] => return None,
            [one] => (one.owned.clone(), vec![quote!(item)]),
            many => {
                let owned = many.iter().map(|a| &a.owned);
                let fields = (0..many.len()).map(|i| {
                    let i = proc_macro2::Literal::usize_unsuffixed(i);
                    quote!(item.#i)
                });
                (quote!((#(#owned),*)), fields.collect())
            }
        };
        let pass = args.iter().zip(&fields).map(|(a, field)| {
            if a.by_ref {
                quote!(&#field)
            } else {
                quote!(#field)
            }
        });
        let ret = signature.ret;
        let handle = ident(&self.handle);
        let method = ident(name);
        let bulk = ident(&bulk_name);
        let id = &op.id;
        let docs = doc_attrs(&format!(
            "[`{plain}`](Self::{name}) for every item of `items`, as fast as the limits of \
             `{id}` allow, in one bulk run.\n\nEach item is the method's arguments{shape}. \
             The report has one outcome per item, in input order: the result, or the error \
             together with the item, or \"not attempted\" after a stop or a cancellation; \
             [`into_remaining`](polvo_runtime::bulk::BulkReport::into_remaining) gives the \
             items to run again. See [`polvo_runtime::bulk::BulkOptions`] for concurrency, \
             stopping at the first error, progress and cancellation, and \
             [`polvo_runtime::bulk::Bulk::stream`] for a stream of items with outcomes as \
             they finish.",
            plain = bare(name),
            shape = if args.len() > 1 { ", as a tuple" } else { "" },
        ));
        Some(quote! {
            #docs
            pub async fn #bulk(
                &self,
                items: impl IntoIterator<Item = #item>,
                options: polvo_runtime::bulk::BulkOptions,
            ) -> polvo_runtime::bulk::BulkReport<#item, #ret> {
                let call = |client: polvo_runtime::Client, item: #item| async move {
                    #handle::new(&client).#method(#(#pass),*).await
                };
                self.client.bulk(#id).options(options).run(items, call).await
            }
        })
    }

    fn method(
        &self,
        op: &Operation,
        name: &str,
        body: Option<&RequestBody>,
        signature: &Signature<'_>,
        (args, mut chain): (&[Arg], Vec<TokenStream>),
    ) -> TokenStream {
        let Signature {
            ret,
            decode,
            errors,
            ..
        } = *signature;
        let args = args.iter().map(Arg::declaration);
        let accept: BTreeSet<&str> = op
            .responses
            .iter()
            .filter(|r| r.status.is_success())
            .flat_map(|r| r.contents.iter().map(|c| c.media_type.as_str()))
            .collect();
        if !accept.is_empty() {
            let accept = accept.into_iter().collect::<Vec<_>>().join(", ");
            chain.push(quote!(.accept(#accept)));
        }

        let new = new_request(op);
        let name = ident(name);
        let docs = doc_attrs(&method_doc(op, body, errors));
        quote! {
            #docs
            pub async fn #name(&self, #(#args),*) -> Result<#ret, polvo_runtime::Error> {
                let request = #new #(#chain)*;
                #decode
            }
        }
    }

    /// The auto-paging method of a paged operation: the same arguments, a stream of
    /// items.
    fn pages_method(
        &self,
        op: &Operation,
        paging: &Paging,
        signature: &Signature<'_>,
    ) -> TokenStream {
        let body = op.bodies.first();
        let (args, chain) = self.request(op, body, signature);
        let args = args.iter().map(Arg::declaration);
        let new = new_request(op);
        let id = &op.id;
        let name = ident(&paging.method);
        let item = type_tokens(&paging.item, &self.types);
        let scheme = paging_scheme(&paging.scheme);
        let plain = body.map_or(op.name.as_str(), |b| b.method.as_str());
        let docs = doc_attrs(&format!(
            "Every item of [`{}`](Self::{}), page after page: `{} {}` (operation `{id}`), \
             {}.\n\nEach page request is paced by the limiter like any other. Nothing is \
             sent until the first [`next`](polvo_runtime::paginate::Pages::next); \
             [`position`](polvo_runtime::paginate::Pages::position) tells where the walk \
             stands, to [`resume`](polvo_runtime::paginate::Pages::resume) it later.",
            crate::naming::bare(plain),
            plain,
            op.method,
            op.path,
            scheme_doc(&paging.scheme),
        ));
        quote! {
            #docs
            pub fn #name(&self, #(#args),*) -> polvo_runtime::paginate::Pages<#item> {
                let request = #new #(#chain)* .accept("application/json");
                self.client.paginate(request, #scheme)
            }
        }
    }

    /// A method's arguments and the request-building calls they make.
    fn request(
        &self,
        op: &Operation,
        body: Option<&RequestBody>,
        signature: &Signature<'_>,
    ) -> (Vec<Arg>, Vec<TokenStream>) {
        let Signature {
            params: params_struct,
            multipart,
            ..
        } = *signature;
        let types = &self.types;
        let mut args = Vec::new();
        let mut chain = Vec::new();
        for p in op.params.iter().filter(|p| p.required) {
            let name = ident(&p.ident);
            let wire = &p.name;
            match p.location {
                ParamLocation::Path => {
                    chain.push(quote!(.path(#wire, #name)));
                    args.push(self.path_arg(name, &p.ty));
                }
                ParamLocation::Query => {
                    let (arg, value) = value_arg(name, &p.ty, types);
                    let style = query_style(p);
                    chain.push(quote!(.query(#wire, #value, #style)));
                    args.push(arg);
                }
                ParamLocation::Header => {
                    let (arg, value) = value_arg(name, &p.ty, types);
                    let wire = wire.to_ascii_lowercase();
                    chain.push(quote!(.header(#wire, #value)));
                    args.push(arg);
                }
            }
        }
        if let Some(body) = body {
            let (arg, call) = body_arg(body, types, multipart);
            args.push(arg);
            chain.push(call);
        }
        if let Some(params) = params_struct {
            args.push(Arg::borrowed(
                ident("params"),
                quote!(&#params),
                quote!(#params),
            ));
            for p in op.params.iter().filter(|p| !p.required) {
                let field = ident(&p.ident);
                let wire = &p.name;
                chain.push(match p.location {
                    ParamLocation::Header => {
                        let wire = wire.to_ascii_lowercase();
                        quote!(.header(#wire, &params.#field))
                    }
                    _ => {
                        let style = query_style(p);
                        quote!(.query(#wire, &params.#field, #style))
                    }
                });
            }
        }
        (args, chain)
    }

    /// A path parameter's argument: something `Display`, strings and enums borrowed.
    fn path_arg(&self, name: proc_macro2::Ident, ty: &TypeRef) -> Arg {
        match self.resolve_alias(ty) {
            TypeRef::Primitive(crate::ir::Primitive::String(_)) => {
                Arg::borrowed(name, quote!(&str), quote!(String))
            }
            TypeRef::Primitive(p) => Arg::by_value(name, super::primitive_tokens(&p)),
            TypeRef::Named(named)
                if matches!(
                    self.defs.get(named.as_str()).map(|d| &d.kind),
                    Some(TypeKind::StringEnum(_) | TypeKind::IntEnum(_))
                ) =>
            {
                let ty = type_tokens(&TypeRef::Named(named), &self.types);
                Arg::borrowed(name, quote!(&#ty), ty)
            }
            _ => Arg::borrowed(name, quote!(impl std::fmt::Display), quote!(String)),
        }
    }

    fn resolve_alias(&self, ty: &TypeRef) -> TypeRef {
        let mut ty = ty.clone();
        for _ in 0..16 {
            match &ty {
                TypeRef::Named(name) => match self.defs.get(name.as_str()).map(|d| &d.kind) {
                    Some(TypeKind::Alias(inner)) => ty = inner.clone(),
                    _ => break,
                },
                _ => break,
            }
        }
        ty
    }

    fn params_struct(&mut self, op: &Operation, optional: &[&Param]) -> proc_macro2::Ident {
        let name = ident(&self.namer.unique(&format!("{}Params", op.type_stem)));
        let fields = optional.iter().map(|p| {
            let field = ident(&p.ident);
            let inner = type_tokens(&p.ty, &self.types);
            let ty = match p.ty {
                TypeRef::Option(_) => inner,
                _ => quote!(Option<#inner>),
            };
            let location = match p.location {
                ParamLocation::Header => "header",
                _ => "query",
            };
            let mut doc = format!("`{}` ({location})", p.name);
            if let Some(description) = &p.description {
                doc = format!("{doc}: {description}");
            }
            let docs = doc_attrs(&doc);
            quote! {
                #docs
                pub #field: #ty,
            }
        });
        let doc = format!(
            "Optional parameters of [`{}::{}`].",
            self.handle,
            bare(
                &op.bodies
                    .first()
                    .map_or(op.name.clone(), |b| b.method.clone())
            )
        );
        self.items.push(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, Default, PartialEq)]
            pub struct #name {
                #(#fields)*
            }
        });
        name
    }

    /// The return type and the statements that produce it from `request`.
    fn response(&mut self, op: &Operation) -> (TokenStream, TokenStream) {
        let types = &self.types;
        let shapes = success_shapes(op);
        match shapes.as_slice() {
            [] | [(_, _, Shape::Empty)] => (
                quote!(polvo_runtime::Response),
                quote!(self.client.execute(request).await),
            ),
            [(_, media, Shape::Json(ty))] => {
                let ty = type_tokens(ty, types);
                let ty = if media.is_none() {
                    quote!(Option<#ty>)
                } else {
                    ty
                };
                (ty, quote!(self.client.execute(request).await?.json()))
            }
            [(_, _, Shape::Text)] => (
                quote!(String),
                quote!(Ok(self.client.execute(request).await?.text())),
            ),
            [(_, _, Shape::Bytes)] => (
                quote!(polvo_runtime::Bytes),
                quote!(Ok(self.client.execute(request).await?.into_bytes())),
            ),
            _ => self.response_enum(op, &shapes),
        }
    }

    fn response_enum(
        &mut self,
        op: &Operation,
        shapes: &[(Status, Option<String>, Shape)],
    ) -> (TokenStream, TokenStream) {
        let name = ident(&self.namer.unique(&format!("{}Responses", op.type_stem)));
        let mut variants = Vec::new();
        let mut arms = Vec::new();
        let mut names = Namer::with_taken(["Other"]);
        let mut sorted: Vec<&(Status, Option<String>, Shape)> = shapes.iter().collect();
        sorted.sort_by_key(|(status, _, _)| matches!(status, Status::Range(_)));
        for (status, media, shape) in sorted {
            let same_status = shapes.iter().filter(|(s, _, _)| s == status).count();
            let mut variant = status_name(*status);
            if same_status > 1 {
                let subtype = media
                    .as_deref()
                    .and_then(|m| m.split('/').nth(1))
                    .unwrap_or("empty");
                variant.push_str(&subtype.to_upper_camel_case());
            }
            let variant = ident(&names.unique(bare(&camel(&variant))));
            let pattern = status_pattern(*status);
            let guard = match (media, shape, same_status > 1) {
                (Some(_), Shape::Json(_), true) => quote!(if content_type.contains("json")),
                (Some(media), _, true) => {
                    let media = media.to_ascii_lowercase();
                    quote!(if content_type == #media)
                }
                _ => TokenStream::new(),
            };
            let doc = format!(
                " `{}`{}",
                status_text(*status),
                media
                    .as_ref()
                    .map(|m| format!(" `{m}`"))
                    .unwrap_or_default()
            );
            match shape {
                Shape::Json(ty) => {
                    let ty = type_tokens(ty, &self.types);
                    variants.push(quote!(#[doc = #doc] #variant(#ty),));
                    arms.push(quote!(#pattern #guard => response.json().map(#name::#variant),));
                }
                Shape::Text => {
                    variants.push(quote!(#[doc = #doc] #variant(String),));
                    arms.push(quote!(#pattern #guard => Ok(#name::#variant(response.text())),));
                }
                Shape::Bytes => {
                    variants.push(quote!(#[doc = #doc] #variant(polvo_runtime::Bytes),));
                    arms.push(
                        quote!(#pattern #guard => Ok(#name::#variant(response.into_bytes())),),
                    );
                }
                Shape::Empty => {
                    variants.push(quote!(#[doc = #doc] #variant,));
                    arms.push(quote!(#pattern #guard => Ok(#name::#variant),));
                }
            }
        }
        let uses_content_type = by_content_type(shapes);
        let content_type =
            uses_content_type.then(|| quote!(let content_type = super::content_type(&response);));
        let doc = format!("Successful responses of `{}`.", op.id);
        self.items.push(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            pub enum #name {
                #(#variants)*
                /// A success status the API description does not list.
                Other(polvo_runtime::Response),
            }
        });
        let decode = quote! {
            let response = self.client.send(request).await?;
            #content_type
            match response.status().as_u16() {
                #(#arms)*
                _ => response.error_for_status().map(#name::Other),
            }
        };
        (quote!(#name), decode)
    }

    /// The struct a multipart body is built from, with `into_parts`; its name.
    fn multipart_struct(&mut self, op: &Operation, body: &RequestBody) -> proc_macro2::Ident {
        let name = ident(&self.namer.unique(&format!("{}Multipart", op.type_stem)));
        let mut fields = Vec::new();
        let mut pushes = Vec::new();
        for part in &body.parts {
            let field = ident(&part.ident);
            let wire = &part.name;
            let (ty, push) = match part.kind {
                PartKind::File => (
                    quote!((String, polvo_runtime::Bytes)),
                    quote!(parts.push(polvo_runtime::Part::file(#wire, value.0, value.1));),
                ),
                PartKind::Files => (
                    quote!(Vec<(String, polvo_runtime::Bytes)>),
                    quote! {
                        for (file_name, bytes) in value {
                            parts.push(polvo_runtime::Part::file(#wire, file_name, bytes));
                        }
                    },
                ),
                PartKind::Text => (
                    quote!(String),
                    quote!(parts.push(polvo_runtime::Part::text(#wire, value));),
                ),
                PartKind::Texts => (
                    quote!(Vec<String>),
                    quote! {
                        for text in value {
                            parts.push(polvo_runtime::Part::text(#wire, text));
                        }
                    },
                ),
            };
            let kind = match part.kind {
                PartKind::File => "file name and content",
                PartKind::Files => "files: name and content of each",
                PartKind::Text | PartKind::Texts => "text",
            };
            let doc = format!(" `{wire}` ({kind}).");
            if part.required {
                fields.push(quote!(#[doc = #doc] pub #field: #ty,));
                pushes.push(quote! {
                    let value = self.#field;
                    #push
                });
            } else {
                fields.push(quote!(#[doc = #doc] pub #field: Option<#ty>,));
                pushes.push(quote! {
                    if let Some(value) = self.#field {
                        #push
                    }
                });
            }
        }
        let doc = format!("The `{}` body of `{}`.", body.media_type, op.id);
        self.items.push(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, Default, PartialEq)]
            pub struct #name {
                #(#fields)*
            }

            impl #name {
                /// The parts, in the order the API description lists them.
                pub fn into_parts(self) -> Vec<polvo_runtime::Part> {
                    let mut parts = Vec::new();
                    #(#pushes)*
                    parts
                }
            }
        });
        name
    }

    /// A typed error enum when error statuses carry different JSON types; its name.
    fn errors(&mut self, op: &Operation) -> Option<String> {
        let typed: Vec<(Status, &TypeRef)> = op
            .responses
            .iter()
            .filter(|r| !r.status.is_success())
            .filter_map(|r| {
                let json = r.contents.iter().find(|c| c.encoding == Encoding::Json)?;
                Some((r.status, &json.ty))
            })
            .collect();
        let distinct: BTreeSet<&TypeRef> = typed.iter().map(|(_, t)| *t).collect();
        if distinct.len() < 2 {
            return None;
        }
        let name_text = self.namer.unique(&format!("{}Errors", op.type_stem));
        let name = ident(&name_text);
        let mut sorted = typed.clone();
        sorted.sort_by_key(|(status, _)| match status {
            Status::Code(_) => 0,
            Status::Range(_) => 1,
            Status::Default => 2,
        });
        let mut names = Namer::default();
        let mut variants = Vec::new();
        let mut arms = Vec::new();
        for (status, ty) in &sorted {
            let variant = ident(&names.unique(&match status {
                Status::Default => "Default".to_owned(),
                Status::Code(code) => format!("Status{code}"),
                Status::Range(range) => format!("Status{range}xx"),
            }));
            let ty = type_tokens(ty, &self.types);
            let doc = format!(" Status `{}`.", status_text(*status));
            variants.push(quote!(#[doc = #doc] #variant(#ty),));
            let pattern = match status {
                Status::Default => quote!(_),
                other => status_pattern(*other),
            };
            arms.push(quote!(#pattern => api.decode().map(Self::#variant),));
        }
        let fallback =
            (!sorted.iter().any(|(s, _)| *s == Status::Default)).then(|| quote!(_ => None,));
        let doc = format!("Typed error bodies of `{}`, by status.", op.id);
        self.items.push(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq)]
            pub enum #name {
                #(#variants)*
            }

            impl #name {
                /// The typed body of `error`, when it is an API error whose body matches
                /// the type documented for its status.
                pub fn from_error(error: &polvo_runtime::Error) -> Option<Self> {
                    let api = error.api()?;
                    match api.status.as_u16() {
                        #(#arms)*
                        #fallback
                    }
                }
            }
        });
        Some(name_text)
    }
}

/// The argument and builder call for a request body.
fn body_arg(
    body: &RequestBody,
    types: &TokenStream,
    multipart: Option<&proc_macro2::Ident>,
) -> (Arg, TokenStream) {
    let media = &body.media_type;
    let name = ident("body");
    match body.encoding {
        Encoding::Json => (borrowed(name, &body.ty, types), quote!(.json(body))),
        Encoding::Form => (borrowed(name, &body.ty, types), quote!(.form(body))),
        Encoding::Multipart => match multipart {
            Some(parts) if !body.parts.is_empty() => (
                Arg::by_value(name, quote!(#parts)),
                quote!(.multipart(body.into_parts())),
            ),
            _ => (
                Arg::by_value(ident("parts"), quote!(Vec<polvo_runtime::Part>)),
                quote!(.multipart(parts)),
            ),
        },
        // The item owns the bytes themselves; the method takes anything that converts.
        Encoding::Text | Encoding::Bytes => {
            let arg = Arg {
                name,
                ty: quote!(impl Into<polvo_runtime::Bytes>),
                owned: quote!(polvo_runtime::Bytes),
                by_ref: false,
            };
            (arg, quote!(.bytes(body, #media)))
        }
    }
}

/// A query or header argument: numbers and booleans by value, the rest borrowed; and
/// the expression that passes it on by reference.
fn value_arg(name: proc_macro2::Ident, ty: &TypeRef, types: &TokenStream) -> (Arg, TokenStream) {
    match ty {
        TypeRef::Primitive(p) if !matches!(p, crate::ir::Primitive::String(_)) => {
            let value = quote!(&#name);
            (Arg::by_value(name, super::primitive_tokens(p)), value)
        }
        other => {
            let value = quote!(#name);
            (borrowed(name, other, types), value)
        }
    }
}

/// A borrowed argument: `&str` for strings, `&[T]` for arrays, `&T` otherwise, each
/// borrowed from the value's own type.
fn borrowed(name: proc_macro2::Ident, ty: &TypeRef, types: &TokenStream) -> Arg {
    let owned = type_tokens(ty, types);
    let declared = match ty {
        TypeRef::Primitive(crate::ir::Primitive::String(_)) => quote!(&str),
        TypeRef::Array(inner) => {
            let inner = type_tokens(inner, types);
            quote!(&[#inner])
        }
        _ => quote!(&#owned),
    };
    Arg::borrowed(name, declared, owned)
}

/// `polvo_runtime::Request::new(..)` for the operation: method, path template and id.
fn new_request(op: &Operation) -> TokenStream {
    let (method, path, id) = (ident(&op.method), &op.path, &op.id);
    quote!(polvo_runtime::Request::new(polvo_runtime::Method::#method, #path, #id))
}

/// The runtime's `Pagination` value for a scheme.
fn paging_scheme(scheme: &PagingScheme) -> TokenStream {
    let path = quote!(polvo_runtime::paginate::Pagination);
    match scheme {
        PagingScheme::Cursor {
            param,
            items,
            has_more,
            next,
        } => {
            let has_more = match has_more {
                Some(field) => quote!(Some(#field)),
                None => quote!(None),
            };
            let next = match next {
                CursorFrom::LastItem(field) => {
                    quote!(polvo_runtime::paginate::CursorFrom::LastItem(#field))
                }
                CursorFrom::Response(field) => {
                    quote!(polvo_runtime::paginate::CursorFrom::Response(#field))
                }
            };
            quote!(#path::Cursor { param: #param, items: #items, has_more: #has_more, next: #next })
        }
        PagingScheme::Offset { param, items } => {
            quote!(#path::Offset { param: #param, items: #items })
        }
        PagingScheme::Page {
            param,
            items,
            first,
        } => {
            let first_lit = proc_macro2::Literal::u64_unsuffixed(*first);
            quote!(#path::Page { param: #param, items: #items, first: #first_lit })
        }
        PagingScheme::LinkHeader { items } => quote!(#path::LinkHeader { items: #items }),
    }
}

/// How a scheme pages, for docs.
fn scheme_doc(scheme: &PagingScheme) -> String {
    let items = |items: &str| match items {
        "" => "items in a top-level array".to_owned(),
        field => format!("items in `{field}`"),
    };
    match scheme {
        PagingScheme::Cursor {
            param, items: i, ..
        } => format!("{}, the cursor sent as `{param}`", items(i)),
        PagingScheme::Offset { param, items: i } => {
            format!("{}, the offset sent as `{param}`", items(i))
        }
        PagingScheme::Page {
            param, items: i, ..
        } => {
            format!("{}, the page number sent as `{param}`", items(i))
        }
        PagingScheme::LinkHeader { items: i } => {
            format!(
                "{}, following `Link: <...>; rel=\"next\"` headers",
                items(i)
            )
        }
    }
}

fn query_style(p: &Param) -> TokenStream {
    match (p.style, p.explode) {
        (ParamStyle::DeepObject, _) => quote!(polvo_runtime::QueryStyle::DeepObject),
        (ParamStyle::SpaceDelimited, _) => quote!(polvo_runtime::QueryStyle::SpaceDelimited),
        (ParamStyle::PipeDelimited, _) => quote!(polvo_runtime::QueryStyle::PipeDelimited),
        (_, false) => quote!(polvo_runtime::QueryStyle::FormCompact),
        (_, true) => quote!(polvo_runtime::QueryStyle::Form),
    }
}

fn status_pattern(status: Status) -> TokenStream {
    match status {
        Status::Code(code) => {
            let code = proc_macro2::Literal::u16_unsuffixed(code);
            quote!(#code)
        }
        Status::Range(range) => {
            let low = proc_macro2::Literal::u16_unsuffixed(range * 100);
            let high = proc_macro2::Literal::u16_unsuffixed(range * 100 + 99);
            quote!(#low..=#high)
        }
        Status::Default => quote!(_),
    }
}

fn status_text(status: Status) -> String {
    match status {
        Status::Code(code) => code.to_string(),
        Status::Range(range) => format!("{range}XX"),
        Status::Default => "default".into(),
    }
}

fn status_name(status: Status) -> String {
    match status {
        Status::Code(200) => "Ok".into(),
        Status::Code(201) => "Created".into(),
        Status::Code(202) => "Accepted".into(),
        Status::Code(203) => "NonAuthoritative".into(),
        Status::Code(204) => "NoContent".into(),
        Status::Code(205) => "ResetContent".into(),
        Status::Code(206) => "PartialContent".into(),
        Status::Code(code) => format!("Status{code}"),
        Status::Range(_) | Status::Default => "Success".into(),
    }
}

/// The doc comment of one method.
fn method_doc(op: &Operation, body: Option<&RequestBody>, errors: Option<&str>) -> String {
    let mut doc = String::new();
    if let Some(summary) = &op.summary {
        doc.push_str(summary.trim());
        doc.push_str("\n\n");
    }
    if let Some(description) = op
        .description
        .as_ref()
        .filter(|d| Some(*d) != op.summary.as_ref())
    {
        doc.push_str(description.trim());
        doc.push_str("\n\n");
    }
    doc.push_str(&format!(
        "`{} {}` (operation `{}`)",
        op.method, op.path, op.id
    ));
    if op.deprecated {
        doc.push_str("\n\n**Deprecated** in the API description.");
    }
    if !op.params.is_empty() {
        doc.push_str("\n\n# Parameters\n");
        for p in &op.params {
            let location = match p.location {
                ParamLocation::Path => "path",
                ParamLocation::Query => "query",
                ParamLocation::Header => "header",
            };
            let place = if p.required {
                format!("`{}`", bare(&p.ident))
            } else {
                format!("`params.{}`", bare(&p.ident))
            };
            let description = p
                .description
                .as_deref()
                .map(|d| format!(": {}", d.lines().next().unwrap_or_default()))
                .unwrap_or_default();
            doc.push_str(&format!(
                "\n- {place} ({location} `{}`){description}",
                p.name
            ));
        }
    }
    if let Some(body) = body {
        doc.push_str(&format!("\n\n# Body\n\n`{}`", body.media_type));
        if !body.parts.is_empty() {
            let parts: Vec<String> = body.parts.iter().map(|p| format!("`{}`", p.name)).collect();
            doc.push_str(&format!(", with parts {}", parts.join(", ")));
        }
    }
    let responses: Vec<String> = op
        .responses
        .iter()
        .map(|r| {
            let media: Vec<String> = r
                .contents
                .iter()
                .map(|c| format!("`{}`", c.media_type))
                .collect();
            let media = if media.is_empty() {
                String::new()
            } else {
                format!(" {}", media.join(", "))
            };
            let description = r.description.lines().next().unwrap_or_default().trim();
            let description = if description.is_empty() {
                String::new()
            } else {
                format!(": {description}")
            };
            format!("\n- `{}`{media}{description}", status_text(r.status))
        })
        .collect();
    if !responses.is_empty() {
        doc.push_str("\n\n# Responses\n");
        doc.push_str(&responses.concat());
    }
    doc.push_str("\n\n# Errors\n\n[`polvo_runtime::Error::Api`] for a failure status");
    match errors {
        Some(errors) => doc.push_str(&format!(" (typed body: [`{errors}::from_error`])")),
        None => doc.push_str(" (typed body: `ApiError::decode`)"),
    }
    doc.push_str(", another [`polvo_runtime::Error`] when the request could not be made.");
    doc
}
