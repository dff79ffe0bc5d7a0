//! Operations to IR: parameters, bodies per media type, responses per status, and the
//! resource group and method name of each operation.

use std::collections::BTreeMap;

use openapiv3::{
    MediaType, Parameter, ParameterSchemaOrContent, PathItem, ReferenceOr, RequestBody, Schema,
    StatusCode,
};

use crate::ir::{
    Content, Encoding, MultipartField, Operation, Param, ParamLocation, ParamStyle, PartKind,
    Response, Status, TypeRef,
};
use crate::lower::types::TypeSpace;
use crate::naming::{Namer, bare, camel, snake};
use crate::spec::{Spec, escape_pointer};

/// Headers OpenAPI says to ignore as parameters: the client sets them itself.
const IGNORED_HEADERS: &[&str] = &["accept", "content-type", "authorization"];

/// Where the annotations put an operation: another resource handle, another name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The resource group, instead of the one from the tag or path.
    pub group: Option<String>,
    /// The method name, instead of the one from the operation id.
    pub name: Option<String>,
}

/// Lowers every operation in document order, places them as `place` says, then names
/// them per group.
pub(crate) fn operations(
    spec: &Spec,
    types: &mut TypeSpace<'_>,
    place: &dyn Fn(&Operation) -> Placement,
) -> Vec<Operation> {
    let mut ids = Namer::default();
    let mut out = Vec::new();
    for (path, item) in spec.api.paths.iter() {
        let item_pointer = format!("#/paths/{}", escape_pointer(path));
        let item: PathItem = match spec.resolve(item) {
            Ok(item) => item,
            Err(message) => {
                types.warn(&item_pointer, format!("{message}; path skipped"));
                continue;
            }
        };
        for (method, op) in item.iter() {
            let pointer = format!("{item_pointer}/{method}");
            let raw_id = op
                .operation_id
                .clone()
                .unwrap_or_else(|| format!("{method}_{path}"));
            let id = ids.unique(&raw_id);
            if id != raw_id {
                types.warn(
                    &pointer,
                    format!("duplicate operationId `{raw_id}`; using `{id}`"),
                );
            }
            let lowering = OperationLowering {
                spec,
                types: &mut *types,
                pointer: &pointer,
                stem: camel(&id),
            };
            out.push(lowering.run(&id, method, path, &item, op));
        }
    }
    let mut renames = BTreeMap::new();
    for op in &mut out {
        let placement = place(op);
        if let Some(group) = placement.group {
            op.group = group;
        }
        if let Some(name) = placement.name {
            renames.insert(op.id.clone(), name);
        }
    }
    name_methods(&mut out, &renames);
    out.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    out
}

struct OperationLowering<'s, 't, 'a> {
    spec: &'s Spec,
    types: &'t mut TypeSpace<'a>,
    pointer: &'s str,
    stem: String,
}

impl OperationLowering<'_, '_, '_> {
    fn run(
        mut self,
        id: &str,
        method: &str,
        path: &str,
        item: &PathItem,
        op: &openapiv3::Operation,
    ) -> Operation {
        let params = self.params(path, &item.parameters, &op.parameters);
        let bodies = match &op.request_body {
            Some(body) => self.bodies(body),
            None => Vec::new(),
        };
        let responses = self.responses(&op.responses);
        Operation {
            id: id.to_owned(),
            method: method.to_uppercase(),
            path: path.to_owned(),
            pointer: self.pointer.to_owned(),
            group: group_of(op.tags.first(), path),
            name: String::new(),
            type_stem: self.stem.clone(),
            summary: op.summary.clone().or_else(|| item.summary.clone()),
            description: op.description.clone().or_else(|| item.description.clone()),
            deprecated: op.deprecated,
            params,
            bodies,
            responses,
            tags: op.tags.clone(),
            paging: None,
        }
    }

    /// Path-level parameters overridden by operation-level ones, path parameters first
    /// in template order.
    fn params(
        &mut self,
        path: &str,
        shared: &[ReferenceOr<Parameter>],
        own: &[ReferenceOr<Parameter>],
    ) -> Vec<Param> {
        let mut merged: Vec<(Parameter, String)> = Vec::new();
        let sources = [("parameters", shared), ("parameters", own)];
        for (level, (key, list)) in sources.iter().enumerate() {
            for (i, param) in list.iter().enumerate() {
                let at = if level == 0 {
                    let item = self.pointer.rsplit_once('/').map_or("", |(p, _)| p);
                    format!("{item}/{key}/{i}")
                } else {
                    format!("{}/{key}/{i}", self.pointer)
                };
                match self.spec.resolve(param) {
                    Ok(param) => {
                        let data = param.parameter_data_ref();
                        let key = (data.name.clone(), location_name(&param));
                        merged.retain(|(p, _)| {
                            (p.parameter_data_ref().name.clone(), location_name(p)) != key
                        });
                        merged.push((param, at));
                    }
                    Err(message) => self
                        .types
                        .warn(&at, format!("{message}; parameter skipped")),
                }
            }
        }

        let mut namer = Namer::with_taken(["body", "params"]);
        let mut out: Vec<Param> = Vec::new();
        for (param, at) in merged {
            if let Some(param) = self.param(&param, &at, &mut namer) {
                out.push(param);
            }
        }
        for name in template_names(path) {
            if !out
                .iter()
                .any(|p| p.location == ParamLocation::Path && p.name == name)
            {
                self.types.warn(
                    self.pointer,
                    format!("path parameter `{name}` is not declared; taking it as a string"),
                );
                out.push(Param {
                    ident: namer.unique(&snake(&name)),
                    name: name.clone(),
                    location: ParamLocation::Path,
                    style: ParamStyle::Simple,
                    explode: false,
                    required: true,
                    ty: TypeRef::Primitive(crate::ir::Primitive::String(None)),
                    description: None,
                });
            }
        }
        let order = template_names(path);
        out.retain(|p| {
            let keep = p.location != ParamLocation::Path || order.contains(&p.name);
            if !keep {
                self.types.warn(
                    self.pointer,
                    format!("path parameter `{}` is not in the path; ignored", p.name),
                );
            }
            keep
        });
        out.sort_by_key(|p| match p.location {
            ParamLocation::Path => (0, order.iter().position(|n| *n == p.name).unwrap_or(0)),
            _ => (1, 0),
        });
        out
    }

    fn param(&mut self, param: &Parameter, at: &str, namer: &mut Namer) -> Option<Param> {
        let data = param.parameter_data_ref();
        let (location, style) = match param {
            Parameter::Path { .. } => (ParamLocation::Path, ParamStyle::Simple),
            Parameter::Header { .. } => (ParamLocation::Header, ParamStyle::Simple),
            Parameter::Query { style, .. } => (ParamLocation::Query, query_style(style)),
            Parameter::Cookie { .. } => {
                // FIXME(cookies): the runtime has no cookie jar; add `Request::cookie` and
                // emit the parameter instead of dropping it.
                self.types.warn(
                    at,
                    format!("cookie parameter `{}` is not supported; ignored", data.name),
                );
                return None;
            }
        };
        if location == ParamLocation::Header
            && IGNORED_HEADERS.contains(&data.name.to_ascii_lowercase().as_str())
        {
            return None;
        }
        let hint = format!("{}{}", self.stem, camel(&data.name));
        let ty = match &data.format {
            ParameterSchemaOrContent::Schema(schema) => {
                let lowered = self.types.lower(schema, &hint, &format!("{at}/schema"));
                lowered.ty
            }
            ParameterSchemaOrContent::Content(content) => match content.first() {
                Some((
                    media,
                    MediaType {
                        schema: Some(schema),
                        ..
                    },
                )) => {
                    let pointer = format!("{at}/content/{}/schema", escape_pointer(media));
                    self.types.lower(schema, &hint, &pointer).ty
                }
                _ => TypeRef::Any,
            },
        };
        let explode = data.explode.unwrap_or(style == ParamStyle::Form);
        Some(Param {
            ident: namer.unique(&snake(&data.name)),
            name: data.name.clone(),
            location,
            style,
            explode,
            required: data.required || location == ParamLocation::Path,
            ty,
            description: data.description.clone(),
        })
    }

    /// One body per media type, JSON first, then forms, multipart, text and bytes.
    fn bodies(&mut self, body: &ReferenceOr<RequestBody>) -> Vec<crate::ir::RequestBody> {
        let at = format!("{}/requestBody", self.pointer);
        let body: RequestBody = match self.spec.resolve(body) {
            Ok(body) => body,
            Err(message) => {
                self.types
                    .warn(&at, format!("{message}; request body skipped"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (media, content) in &body.content {
            let encoding = encoding_of(media);
            let pointer = format!("{at}/content/{}/schema", escape_pointer(media));
            let schema = content.schema.as_ref();
            if encoding == Encoding::Form && schema.is_some_and(|s| self.is_empty_object(s)) {
                continue;
            }
            let (ty, parts) = match (encoding, schema) {
                (Encoding::Json | Encoding::Form, Some(schema)) => {
                    let hint = format!("{}Request", self.stem);
                    (self.types.lower(schema, &hint, &pointer).ty, Vec::new())
                }
                (Encoding::Multipart, Some(schema)) => (TypeRef::Any, self.parts(schema)),
                _ => (TypeRef::Any, Vec::new()),
            };
            out.push(crate::ir::RequestBody {
                media_type: media.clone(),
                encoding,
                ty,
                parts,
                method: String::new(),
            });
        }
        out.sort_by_key(|b| b.encoding);
        out
    }

    /// Whether a schema is an object without properties (Stripe's empty GET forms).
    fn is_empty_object(&self, schema: &ReferenceOr<Schema>) -> bool {
        let Ok(schema) = self.spec.resolve(schema) else {
            return false;
        };
        match &schema.schema_kind {
            openapiv3::SchemaKind::Type(openapiv3::Type::Object(o)) => {
                o.properties.is_empty() && o.additional_properties.is_none()
            }
            _ => false,
        }
    }

    /// Multipart fields: files for `format: binary`, text for the rest.
    fn parts(&self, schema: &ReferenceOr<Schema>) -> Vec<MultipartField> {
        let Ok(schema) = self.spec.resolve(schema) else {
            return Vec::new();
        };
        let (properties, required) = match &schema.schema_kind {
            openapiv3::SchemaKind::Type(openapiv3::Type::Object(o)) => (&o.properties, &o.required),
            openapiv3::SchemaKind::Any(any) => (&any.properties, &any.required),
            _ => return Vec::new(),
        };
        let mut namer = Namer::default();
        properties
            .iter()
            .map(|(name, property)| {
                let schema = self.spec.resolve_boxed(property).ok();
                let array = schema.as_ref().is_some_and(|s| {
                    matches!(
                        &s.schema_kind,
                        openapiv3::SchemaKind::Type(openapiv3::Type::Array(_))
                    )
                });
                let kind = match (schema.as_ref().is_some_and(is_binary), array) {
                    (true, true) => PartKind::Files,
                    (true, false) => PartKind::File,
                    (false, true) => PartKind::Texts,
                    (false, false) => PartKind::Text,
                };
                MultipartField {
                    name: name.clone(),
                    ident: namer.unique(&snake(name)),
                    kind,
                    required: required.contains(name),
                }
            })
            .collect()
    }

    fn responses(&mut self, responses: &openapiv3::Responses) -> Vec<Response> {
        let mut entries: Vec<(Status, &ReferenceOr<openapiv3::Response>, String)> = responses
            .responses
            .iter()
            .map(|(code, response)| {
                let status = match code {
                    StatusCode::Code(code) => Status::Code(*code),
                    StatusCode::Range(range) => Status::Range(*range),
                };
                (status, response, code.to_string())
            })
            .collect();
        if let Some(default) = &responses.default {
            entries.push((Status::Default, default, "default".into()));
        }
        let has_success = entries.iter().any(|(s, _, _)| s.is_success());

        let mut out = Vec::new();
        for (status, response, key) in entries {
            let at = format!("{}/responses/{}", self.pointer, escape_pointer(&key));
            let response: openapiv3::Response = match self.spec.resolve(response) {
                Ok(response) => response,
                Err(message) => {
                    self.types.warn(&at, format!("{message}; response skipped"));
                    continue;
                }
            };
            let success = status.is_success() || (!has_success && status == Status::Default);
            let hint = if success {
                format!("{}Response", self.stem)
            } else {
                format!("{}Error", self.stem)
            };
            let contents = response
                .content
                .iter()
                .map(|(media, content)| {
                    let encoding = match encoding_of(media) {
                        Encoding::Json => Encoding::Json,
                        Encoding::Text => Encoding::Text,
                        _ => Encoding::Bytes,
                    };
                    let ty = match (&content.schema, encoding) {
                        (Some(schema), Encoding::Json) => {
                            let pointer = format!("{at}/content/{}/schema", escape_pointer(media));
                            let lowered = self.types.lower(schema, &hint, &pointer);
                            if lowered.nullable && lowered.ty != TypeRef::Any {
                                TypeRef::Option(Box::new(lowered.ty))
                            } else {
                                lowered.ty
                            }
                        }
                        _ => TypeRef::Any,
                    };
                    Content {
                        media_type: media.clone(),
                        encoding,
                        ty,
                    }
                })
                .collect();
            let status = if success && status == Status::Default {
                Status::Range(2)
            } else {
                status
            };
            out.push(Response {
                status,
                description: response.description,
                contents,
            });
        }
        out
    }
}

fn location_name(param: &Parameter) -> &'static str {
    match param {
        Parameter::Query { .. } => "query",
        Parameter::Header { .. } => "header",
        Parameter::Path { .. } => "path",
        Parameter::Cookie { .. } => "cookie",
    }
}

fn query_style(style: &openapiv3::QueryStyle) -> ParamStyle {
    match style {
        openapiv3::QueryStyle::Form => ParamStyle::Form,
        openapiv3::QueryStyle::DeepObject => ParamStyle::DeepObject,
        openapiv3::QueryStyle::SpaceDelimited => ParamStyle::SpaceDelimited,
        openapiv3::QueryStyle::PipeDelimited => ParamStyle::PipeDelimited,
    }
}

/// How a media type is encoded.
pub(crate) fn encoding_of(media: &str) -> Encoding {
    let media = media.to_ascii_lowercase();
    let essence = media.split(';').next().unwrap_or_default().trim();
    if essence.contains("json") {
        Encoding::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Encoding::Form
    } else if essence.starts_with("multipart/") {
        Encoding::Multipart
    } else if essence.starts_with("text/") {
        Encoding::Text
    } else {
        Encoding::Bytes
    }
}

fn is_binary(schema: &Schema) -> bool {
    match &schema.schema_kind {
        openapiv3::SchemaKind::Type(openapiv3::Type::String(s)) => matches!(
            s.format,
            openapiv3::VariantOrUnknownOrEmpty::Item(openapiv3::StringFormat::Binary)
        ),
        openapiv3::SchemaKind::Type(openapiv3::Type::Array(a)) => a
            .items
            .as_ref()
            .and_then(|i| i.as_item())
            .is_some_and(|i| is_binary(i)),
        _ => false,
    }
}

/// `{name}`s in a path template, in order.
fn template_names(path: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        names.push(rest[open + 1..open + close].to_owned());
        rest = &rest[open + close + 1..];
    }
    names
}

/// The resource group: the first tag, else the first path segment that is neither a
/// parameter nor a version (`/v1/customers/{id}` is in `customers`).
fn group_of(tag: Option<&String>, path: &str) -> String {
    if let Some(tag) = tag.filter(|t| !snake(t).is_empty()) {
        return bare(&snake(tag)).to_owned();
    }
    let segment = path.split('/').find(|s| {
        let version = s.len() > 1
            && s.starts_with('v')
            && s[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
        !s.is_empty() && !s.starts_with('{') && !version && *s != "api"
    });
    segment.map_or_else(|| "root".to_owned(), |s| bare(&snake(s)).to_owned())
}

/// Method names: the operation id in snake case without the group's words
/// (`listPets` in `pets` is `list`), falling back to the full id on collisions; extra
/// request media types get a suffix (`create_form`).
/// Names methods per group; renamed operations are named first, so that they get the
/// name asked for unless two renames ask for the same one.
fn name_methods(ops: &mut [Operation], renames: &BTreeMap<String, String>) {
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_group.entry(op.group.clone()).or_default().push(i);
    }
    for indices in by_group.values() {
        let short: Vec<String> = indices
            .iter()
            .map(|&i| strip_group(&snake(&ops[i].id), &ops[i].group))
            .collect();
        let mut namer = Namer::with_taken(["new"]);
        let mut order: Vec<usize> = (0..indices.len()).collect();
        order.sort_by_key(|&k| !renames.contains_key(&ops[indices[k]].id));
        for k in order {
            let i = indices[k];
            let clash = short.iter().filter(|s| **s == short[k]).count() > 1;
            let base = match renames.get(&ops[i].id) {
                Some(name) => name.clone(),
                None if clash => snake(&ops[i].id),
                None => short[k].clone(),
            };
            let name = namer.unique(&base);
            let op = &mut ops[i];
            for (b, body) in op.bodies.iter_mut().enumerate() {
                body.method = if b == 0 {
                    name.clone()
                } else {
                    namer.unique(&format!("{}_{}", bare(&name), body_suffix(body)))
                };
            }
            op.name = name;
        }
    }
}

fn body_suffix(body: &crate::ir::RequestBody) -> String {
    match body.encoding {
        Encoding::Json => {
            let subtype = body.media_type.split('/').nth(1).unwrap_or("json");
            bare(&snake(subtype)).to_owned()
        }
        Encoding::Form => "form".into(),
        Encoding::Multipart => "multipart".into(),
        Encoding::Text => "text".into(),
        Encoding::Bytes => "bytes".into(),
    }
}

/// Removes the group's words from a snake-case method name, allowing singular and plural.
pub(crate) fn strip_group(method: &str, group: &str) -> String {
    let words: Vec<&str> = bare(method).split('_').filter(|w| !w.is_empty()).collect();
    let group: Vec<&str> = bare(group).split('_').filter(|w| !w.is_empty()).collect();
    if group.is_empty() || words.len() <= group.len() {
        return method.to_owned();
    }
    let plural = |one: &str, many: &str| {
        format!("{one}s") == many
            || many
                .strip_suffix("ies")
                .is_some_and(|stem| format!("{stem}y") == one)
    };
    let same = |a: &str, b: &str| a == b || plural(a, b) || plural(b, a);

    for start in 0..=words.len() - group.len() {
        if words[start..start + group.len()]
            .iter()
            .zip(&group)
            .all(|(w, g)| same(w, g))
        {
            let rest: Vec<&str> = words[..start]
                .iter()
                .chain(&words[start + group.len()..])
                .copied()
                .collect();
            return snake(&rest.join("_"));
        }
    }
    method.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_group_words() {
        assert_eq!(strip_group("list_pets", "pets"), "list");
        assert_eq!(strip_group("get_pet", "pets"), "get");
        assert_eq!(
            strip_group("get_customers_customer", "customers"),
            "get_customer"
        );
        assert_eq!(strip_group("pets", "pets"), "pets");
        assert_eq!(strip_group("repos_get", "repos"), "get");
        assert_eq!(strip_group("list_policies", "policy"), "list");
        assert_eq!(strip_group("impl_pets", "pets"), "r#impl");
    }

    #[test]
    fn groups_skip_versions_and_parameters() {
        assert_eq!(group_of(None, "/v1/customers/{id}"), "customers");
        assert_eq!(group_of(None, "/{id}"), "root");
        assert_eq!(group_of(Some(&"Pet Store".to_owned()), "/x"), "pet_store");
    }
}
