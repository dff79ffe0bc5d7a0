//! Schemas to named types: the type space of one API.
//!
//! Every schema reached from an operation or from `components.schemas` becomes a
//! [`TypeRef`]; objects, enums and unions get a named [`TypeDef`]. A referenced schema is
//! named after the last segment of its pointer and registered before its body is lowered,
//! so recursive schemas terminate; [`TypeSpace::finish`] then boxes the fields that close
//! a cycle. Whatever cannot be expressed becomes `serde_json::Value` with a warning naming
//! the JSON pointer.

use std::collections::{BTreeMap, BTreeSet};

use openapiv3::{AdditionalProperties, ReferenceOr, Schema, SchemaKind, Type};

use crate::diagnostic::Diagnostic;
use crate::ir::{EnumValue, Field, Primitive, Struct, TypeDef, TypeKind, TypeRef, Union, Variant};
use crate::naming::{Namer, camel, snake};
use crate::spec::{Spec, escape_pointer};

/// How deep `allOf` and reference chains are followed before giving up.
const MAX_DEPTH: usize = 64;

/// A lowered schema: its type and whether `null` is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowered {
    /// The type, without an `Option` for nullability.
    pub ty: TypeRef,
    /// Whether the schema allows `null`.
    pub nullable: bool,
}

impl Lowered {
    fn of(ty: TypeRef) -> Self {
        Self {
            ty,
            nullable: false,
        }
    }
}

/// A schema reduced to the shapes the generator handles.
enum Shape<'s> {
    Object(Object<'s>),
    Array(Option<&'s ReferenceOr<Box<Schema>>>),
    String(Option<String>, Vec<String>),
    Integer(Option<String>, Vec<i64>),
    Number(Option<String>),
    Boolean,
    Union(&'s [ReferenceOr<Schema>]),
    AllOf(&'s [ReferenceOr<Schema>], Option<Object<'s>>),
    /// Any JSON value; the message says what was not understood, if anything.
    Any(Option<&'static str>),
}

#[derive(Clone, Copy)]
struct Object<'s> {
    properties: &'s indexmap::IndexMap<String, ReferenceOr<Box<Schema>>>,
    required: &'s [String],
    additional: Option<&'s AdditionalProperties>,
}

fn shape(schema: &Schema) -> Shape<'_> {
    match &schema.schema_kind {
        SchemaKind::Type(Type::Object(o)) => Shape::Object(Object {
            properties: &o.properties,
            required: &o.required,
            additional: o.additional_properties.as_ref(),
        }),
        SchemaKind::Type(Type::Array(a)) => Shape::Array(a.items.as_ref()),
        SchemaKind::Type(Type::String(s)) => Shape::String(
            format_text(&s.format),
            s.enumeration.iter().flatten().cloned().collect(),
        ),
        SchemaKind::Type(Type::Integer(i)) => Shape::Integer(
            format_text(&i.format),
            i.enumeration.iter().flatten().copied().collect(),
        ),
        SchemaKind::Type(Type::Number(n)) => Shape::Number(format_text(&n.format)),
        SchemaKind::Type(Type::Boolean(_)) => Shape::Boolean,
        SchemaKind::OneOf { one_of: v } | SchemaKind::AnyOf { any_of: v } => Shape::Union(v),
        SchemaKind::AllOf { all_of } => Shape::AllOf(all_of, None),
        SchemaKind::Not { .. } => Shape::Any(Some("`not` schemas are not supported")),
        SchemaKind::Any(any) => any_shape(any),
    }
}

/// Schemas that mix keywords, or have none: `openapiv3` leaves them untyped.
fn any_shape(any: &openapiv3::AnySchema) -> Shape<'_> {
    let object = Object {
        properties: &any.properties,
        required: &any.required,
        additional: any.additional_properties.as_ref(),
    };
    let is_object = any.typ.as_deref() == Some("object")
        || !any.properties.is_empty()
        || any.additional_properties.is_some();
    if !any.one_of.is_empty() {
        return Shape::Union(&any.one_of);
    }
    if !any.any_of.is_empty() {
        return Shape::Union(&any.any_of);
    }
    if !any.all_of.is_empty() {
        return Shape::AllOf(&any.all_of, is_object.then_some(object));
    }
    if is_object {
        return Shape::Object(object);
    }
    if any.typ.as_deref() == Some("array") || any.items.is_some() {
        return Shape::Array(any.items.as_ref());
    }
    let strings: Vec<String> = any
        .enumeration
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let ints: Vec<i64> = any.enumeration.iter().filter_map(|v| v.as_i64()).collect();
    let non_null = any.enumeration.iter().filter(|v| !v.is_null()).count();
    match any.typ.as_deref() {
        _ if non_null > 0 && strings.len() == non_null => {
            Shape::String(any.format.clone(), strings)
        }
        _ if non_null > 0 && ints.len() == non_null => Shape::Integer(any.format.clone(), ints),
        _ if non_null > 0 => Shape::Any(Some("enum values of mixed types are not supported")),
        Some("string") => Shape::String(any.format.clone(), Vec::new()),
        Some("integer") => Shape::Integer(any.format.clone(), Vec::new()),
        Some("number") => Shape::Number(any.format.clone()),
        Some("boolean") => Shape::Boolean,
        Some(_) => Shape::Any(Some("unknown `type`")),
        None => Shape::Any(None),
    }
}

fn format_text<T: std::fmt::Debug>(
    format: &openapiv3::VariantOrUnknownOrEmpty<T>,
) -> Option<String> {
    use heck::ToKebabCase;
    match format {
        openapiv3::VariantOrUnknownOrEmpty::Item(item) => Some(format!("{item:?}").to_kebab_case()),
        openapiv3::VariantOrUnknownOrEmpty::Unknown(text) => Some(text.clone()),
        openapiv3::VariantOrUnknownOrEmpty::Empty => None,
    }
}

/// Whether a schema carries no type information (only docs or `nullable`).
fn is_trivial(schema: &Schema) -> bool {
    matches!(shape(schema), Shape::Any(None))
}

/// The Rust type for a string, integer or number format.
fn primitive(shape: &Shape<'_>) -> Option<Primitive> {
    Some(match shape {
        Shape::String(format, _) => Primitive::String(format.clone()),
        Shape::Integer(format, _) => match format.as_deref() {
            Some("int32") => Primitive::I32,
            Some("uint32") => Primitive::U32,
            Some("uint64" | "uint") => Primitive::U64,
            _ => Primitive::I64,
        },
        Shape::Number(format) => match format.as_deref() {
            Some("float") => Primitive::F32,
            _ => Primitive::F64,
        },
        Shape::Boolean => Primitive::Bool,
        _ => return None,
    })
}

/// An `allOf` flattened into one object.
#[derive(Default)]
struct Merged {
    /// Property name, schema, pointer of the schema.
    properties: Vec<(String, ReferenceOr<Box<Schema>>, String)>,
    required: BTreeSet<String>,
    additional: Option<(AdditionalProperties, String)>,
}

/// Every named type of one API, and the diagnostics found while naming them.
pub struct TypeSpace<'a> {
    spec: &'a Spec,
    by_pointer: BTreeMap<String, Lowered>,
    defs: BTreeMap<String, TypeDef>,
    namer: Namer,
    diagnostics: Vec<Diagnostic>,
    /// Referenced schemas named but not lowered yet: name, schema, pointer. Lowering them
    /// later rather than on first sight keeps recursion as deep as inline nesting only;
    /// Stripe's reference chains are hundreds of schemas long.
    pending: Vec<(String, Schema, String)>,
    /// Inline schemas already named, by their JSON text.
    by_shape: BTreeMap<String, String>,
    depth: usize,
}

impl<'a> TypeSpace<'a> {
    /// An empty type space for `spec`.
    pub fn new(spec: &'a Spec) -> Self {
        Self {
            spec,
            by_pointer: BTreeMap::new(),
            defs: BTreeMap::new(),
            namer: Namer::default(),
            diagnostics: Vec::new(),
            pending: Vec::new(),
            by_shape: BTreeMap::new(),
            depth: 0,
        }
    }

    /// Names every schema in `components.schemas`, used or not.
    pub fn add_components(&mut self) {
        let names: Vec<String> = match &self.spec.api.components {
            Some(components) => components.schemas.keys().cloned().collect(),
            None => Vec::new(),
        };
        for name in names {
            self.reference(&format!("#/components/schemas/{}", escape_pointer(&name)));
        }
    }

    /// Records a warning.
    pub fn warn(&mut self, pointer: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::warning(pointer, message));
    }

    /// The type of a schema or reference met at `pointer`; inline objects, enums and
    /// unions are named from `hint`.
    pub fn lower(&mut self, schema: &ReferenceOr<Schema>, hint: &str, pointer: &str) -> Lowered {
        match schema {
            ReferenceOr::Reference { reference } => self.reference(reference),
            ReferenceOr::Item(schema) => self.inline(schema, hint, pointer),
        }
    }

    /// As [`TypeSpace::lower`], for the boxed schemas of properties and items.
    pub fn lower_boxed(
        &mut self,
        schema: &ReferenceOr<Box<Schema>>,
        hint: &str,
        pointer: &str,
    ) -> Lowered {
        match schema {
            ReferenceOr::Reference { reference } => self.reference(reference),
            ReferenceOr::Item(schema) => self.inline(schema, hint, pointer),
        }
    }

    /// The named type for a referenced schema, lowering it on first sight.
    pub fn reference(&mut self, reference: &str) -> Lowered {
        if let Some(known) = self.by_pointer.get(reference) {
            return known.clone();
        }
        let schema = match self.spec.resolve_ref::<Schema>(reference) {
            Ok(schema) => schema,
            Err(message) => {
                self.warn(reference, format!("{message}; using serde_json::Value"));
                return Lowered::of(TypeRef::Any);
            }
        };
        let segment = reference.rsplit('/').next().unwrap_or_default();
        let segment = segment.replace("~1", "/").replace("~0", "~");
        let name = self.namer.unique(&camel(&segment));
        let lowered = Lowered {
            ty: TypeRef::Named(name.clone()),
            nullable: schema.schema_data.nullable,
        };
        self.by_pointer
            .insert(reference.to_owned(), lowered.clone());
        self.pending.push((name, schema, reference.to_owned()));
        lowered
    }

    /// Lowers every referenced schema named so far, and those they reach.
    pub fn drain(&mut self) {
        while let Some((name, schema, pointer)) = self.pending.pop() {
            self.define(&name, &schema, &pointer);
        }
    }

    /// An inline schema: primitives and containers stay anonymous, the rest is named.
    fn inline(&mut self, schema: &Schema, hint: &str, pointer: &str) -> Lowered {
        let nullable = schema.schema_data.nullable;
        let shape = shape(schema);
        let ty = match &shape {
            Shape::Any(reason) => {
                if let Some(reason) = reason {
                    self.warn(pointer, format!("{reason}; using serde_json::Value"));
                }
                TypeRef::Any
            }
            Shape::Array(items) => TypeRef::Array(Box::new(self.items(*items, hint, pointer))),
            Shape::Object(object) if object.properties.is_empty() => {
                self.map_value(object.additional, hint, pointer)
            }
            Shape::AllOf(parts, own) => {
                if let Some(lowered) = self.single_ref(parts, own.as_ref()) {
                    return Lowered {
                        ty: lowered.ty,
                        nullable: nullable || lowered.nullable,
                    };
                }
                self.new_named(schema, hint, pointer)
            }
            Shape::String(_, values) if values.is_empty() => {
                primitive(&shape).map_or(TypeRef::Any, TypeRef::Primitive)
            }
            Shape::Integer(_, values) if values.is_empty() => {
                primitive(&shape).map_or(TypeRef::Any, TypeRef::Primitive)
            }
            Shape::Number(_) | Shape::Boolean => {
                primitive(&shape).map_or(TypeRef::Any, TypeRef::Primitive)
            }
            _ => self.new_named(schema, hint, pointer),
        };
        Lowered { ty, nullable }
    }

    /// The type of array items; nullable items become `Option`.
    fn items(
        &mut self,
        items: Option<&ReferenceOr<Box<Schema>>>,
        hint: &str,
        pointer: &str,
    ) -> TypeRef {
        let Some(items) = items else {
            return TypeRef::Any;
        };
        let item = self.lower_boxed(items, &format!("{hint}Item"), &format!("{pointer}/items"));
        optional(item)
    }

    /// The value type of a map (`additionalProperties`).
    fn map_value(
        &mut self,
        additional: Option<&AdditionalProperties>,
        hint: &str,
        pointer: &str,
    ) -> TypeRef {
        let value = match additional {
            Some(AdditionalProperties::Schema(schema)) => {
                let pointer = format!("{pointer}/additionalProperties");
                optional(self.lower(schema, &format!("{hint}Value"), &pointer))
            }
            _ => TypeRef::Any,
        };
        TypeRef::Map(Box::new(value))
    }

    /// Names an inline schema after `hint` and defines it.
    ///
    /// Inline schemas that are written the same way (Stripe repeats the same parameter
    /// objects across operations, and `enum: [""]` hundreds of times) share one type,
    /// named after the first place it appears, which keeps generated crates small.
    fn new_named(&mut self, schema: &Schema, hint: &str, pointer: &str) -> TypeRef {
        if let Some(known) = self.by_pointer.get(pointer) {
            return known.ty.clone();
        }
        let key = serde_json::to_string(schema).ok();
        if let Some(known) = key.as_ref().and_then(|k| self.by_shape.get(k)) {
            return TypeRef::Named(known.clone());
        }
        let hint = match shape(schema) {
            Shape::String(_, values) if values.iter().all(String::is_empty) => "EmptyString",
            _ => hint,
        };
        let name = self.namer.unique(&camel(hint));
        self.by_pointer.insert(
            pointer.to_owned(),
            Lowered::of(TypeRef::Named(name.clone())),
        );
        if let Some(key) = key {
            self.by_shape.insert(key, name.clone());
        }
        self.define(&name, schema, pointer);
        TypeRef::Named(name)
    }

    /// Lowers a schema's body into the named type `name`.
    fn define(&mut self, name: &str, schema: &Schema, pointer: &str) {
        self.depth += 1;
        let kind = if self.depth > MAX_DEPTH {
            self.warn(pointer, "schema nests too deeply; using serde_json::Value");
            TypeKind::Alias(TypeRef::Any)
        } else {
            self.kind(name, schema, pointer)
        };
        self.depth -= 1;
        let doc = doc_text(schema);
        let def = TypeDef {
            name: name.to_owned(),
            pointer: pointer.to_owned(),
            doc,
            kind,
        };
        self.defs.insert(name.to_owned(), def);
    }

    fn kind(&mut self, name: &str, schema: &Schema, pointer: &str) -> TypeKind {
        let shape = shape(schema);
        match shape {
            Shape::Object(object) if !object.properties.is_empty() => {
                let merged = self.merge_object(&object, pointer);
                TypeKind::Struct(self.fields(name, merged))
            }
            Shape::String(_, values) if !values.is_empty() => {
                TypeKind::StringEnum(enum_values(&values))
            }
            Shape::Integer(_, mut values) if !values.is_empty() => {
                values.sort_unstable();
                values.dedup();
                TypeKind::IntEnum(values)
            }
            Shape::Union(variants) => {
                let tag = schema.schema_data.discriminator.as_ref();
                self.union(name, variants, tag, pointer)
            }
            Shape::AllOf(parts, own) => {
                if let Some(lowered) = self.single_ref(parts, own.as_ref()) {
                    return TypeKind::Alias(optional(lowered));
                }
                let mut merged = Merged::default();
                let ok = parts.iter().enumerate().all(|(i, part)| {
                    self.merge_part(&mut merged, part, &format!("{pointer}/allOf/{i}"), 0)
                });
                if let (true, Some(own)) = (ok, own) {
                    merged = self.merge_into(merged, &own, pointer);
                }
                if ok {
                    TypeKind::Struct(self.fields(name, merged))
                } else {
                    self.warn(
                        pointer,
                        "allOf parts cannot be merged; using serde_json::Value",
                    );
                    TypeKind::Alias(TypeRef::Any)
                }
            }
            _ => {
                let lowered = self.inline_body(schema, name, pointer);
                TypeKind::Alias(optional(lowered))
            }
        }
    }

    /// A named schema whose body is anonymous (`type Id = String`).
    fn inline_body(&mut self, schema: &Schema, name: &str, pointer: &str) -> Lowered {
        match shape(schema) {
            Shape::Object(object) => Lowered::of(self.map_value(object.additional, name, pointer)),
            Shape::Array(items) => {
                Lowered::of(TypeRef::Array(Box::new(self.items(items, name, pointer))))
            }
            Shape::Any(Some(reason)) => {
                self.warn(pointer, format!("{reason}; using serde_json::Value"));
                Lowered::of(TypeRef::Any)
            }
            other => Lowered::of(primitive(&other).map_or(TypeRef::Any, TypeRef::Primitive)),
        }
    }

    /// `allOf: [{$ref: X}]` plus only docs or `nullable`: just `X`.
    fn single_ref(
        &mut self,
        parts: &[ReferenceOr<Schema>],
        own: Option<&Object<'_>>,
    ) -> Option<Lowered> {
        if own.is_some_and(|o| !o.properties.is_empty()) {
            return None;
        }
        let mut reference = None;
        let mut nullable = false;
        for part in parts {
            match part {
                ReferenceOr::Reference { reference: r } if reference.is_none() => {
                    reference = Some(r)
                }
                ReferenceOr::Item(schema) if is_trivial(schema) => {
                    nullable |= schema.schema_data.nullable;
                }
                _ => return None,
            }
        }
        let mut lowered = self.reference(reference?);
        lowered.nullable |= nullable;
        Some(lowered)
    }

    fn merge_object(&mut self, object: &Object<'_>, pointer: &str) -> Merged {
        self.merge_into(Merged::default(), object, pointer)
    }

    fn merge_into(&mut self, mut merged: Merged, object: &Object<'_>, pointer: &str) -> Merged {
        for (name, schema) in object.properties {
            let at = format!("{pointer}/properties/{}", escape_pointer(name));
            match merged.properties.iter_mut().find(|(n, _, _)| n == name) {
                Some(slot) => {
                    slot.1 = schema.clone();
                    slot.2 = at;
                }
                None => merged.properties.push((name.clone(), schema.clone(), at)),
            }
        }
        merged.required.extend(object.required.iter().cloned());
        if let Some(AdditionalProperties::Schema(schema)) = object.additional {
            let at = format!("{pointer}/additionalProperties");
            merged.additional = Some((AdditionalProperties::Schema(schema.clone()), at));
        }
        merged
    }

    /// Adds one `allOf` part to `merged`; false when the part is not an object.
    fn merge_part(
        &mut self,
        merged: &mut Merged,
        part: &ReferenceOr<Schema>,
        pointer: &str,
        depth: usize,
    ) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let (schema, pointer) = match part {
            ReferenceOr::Item(schema) => (schema.clone(), pointer.to_owned()),
            ReferenceOr::Reference { reference } => {
                match self.spec.resolve_ref::<Schema>(reference) {
                    Ok(schema) => (schema, reference.clone()),
                    Err(_) => return false,
                }
            }
        };
        match shape(&schema) {
            Shape::Object(object) => {
                *merged = self.merge_into(std::mem::take(merged), &object, &pointer);
                true
            }
            Shape::AllOf(parts, own) => {
                let ok = parts.iter().enumerate().all(|(i, part)| {
                    self.merge_part(merged, part, &format!("{pointer}/allOf/{i}"), depth + 1)
                });
                if let (true, Some(own)) = (ok, own) {
                    *merged = self.merge_into(std::mem::take(merged), &own, &pointer);
                }
                ok
            }
            Shape::Any(None) => true,
            _ => false,
        }
    }

    /// Struct fields from merged properties.
    fn fields(&mut self, name: &str, merged: Merged) -> Struct {
        let mut namer = Namer::default();
        let mut fields = Vec::with_capacity(merged.properties.len());
        for (property, schema, pointer) in merged.properties {
            let hint = format!("{name}{}", camel(&property));
            let lowered = self.lower_boxed(&schema, &hint, &pointer);
            let doc = match &schema {
                ReferenceOr::Item(schema) => doc_text(schema),
                ReferenceOr::Reference { .. } => None,
            };
            fields.push(Field {
                ident: namer.unique(&snake(&property)),
                required: merged.required.contains(&property),
                nullable: lowered.nullable,
                ty: lowered.ty,
                name: property,
                doc,
            });
        }
        let additional = merged.additional.map(|(additional, pointer)| {
            let ty = match additional {
                AdditionalProperties::Schema(schema) => {
                    optional(self.lower(&schema, &format!("{name}Value"), &pointer))
                }
                AdditionalProperties::Any(_) => TypeRef::Any,
            };
            (namer.unique("additional_properties"), ty)
        });
        Struct { fields, additional }
    }

    /// A union, tagged when a discriminator names every variant.
    fn union(
        &mut self,
        name: &str,
        variants: &[ReferenceOr<Schema>],
        discriminator: Option<&openapiv3::Discriminator>,
        pointer: &str,
    ) -> TypeKind {
        let mut namer = Namer::with_taken(["Unknown"]);
        let mut lowered = Vec::new();
        let mut tagged = discriminator.is_some();
        for (i, variant) in variants.iter().enumerate() {
            if let ReferenceOr::Item(schema) = variant {
                tagged = false;
                if is_trivial(schema) && schema.schema_data.nullable {
                    continue;
                }
            }
            let hint = format!("{name}Variant{}", i + 1);
            let at = format!("{pointer}/oneOf/{i}");
            let ty = optional(self.lower(variant, &hint, &at));
            let tags = match (variant, discriminator) {
                (ReferenceOr::Reference { reference }, Some(d)) => tag_values(reference, d),
                _ => Vec::new(),
            };
            lowered.push(Variant {
                ident: namer.unique(&variant_name(&ty)),
                ty,
                tags,
            });
        }
        if lowered.is_empty() {
            return TypeKind::Alias(TypeRef::Any);
        }
        TypeKind::Union(Union {
            variants: lowered,
            tag: discriminator
                .filter(|_| tagged)
                .map(|d| d.property_name.clone()),
        })
    }

    /// The order untagged variants are tried in: objects with more required fields first,
    /// then containers, numbers, booleans, strings and anything last, so that a variant
    /// never swallows input meant for a later one.
    fn rank(&self, ty: &TypeRef, depth: usize) -> (u8, i64) {
        match ty {
            TypeRef::Named(name) if depth < MAX_DEPTH => match self.defs.get(name).map(|d| &d.kind)
            {
                Some(TypeKind::Struct(s)) => {
                    let required = s.fields.iter().filter(|f| f.required).count();
                    (0, -i64::try_from(required).unwrap_or(i64::MAX))
                }
                Some(TypeKind::Union(_)) => (1, 0),
                Some(TypeKind::IntEnum(_)) => (3, 0),
                Some(TypeKind::StringEnum(_)) => (6, 0),
                Some(TypeKind::Alias(inner)) => self.rank(inner, depth + 1),
                None => (0, 0),
            },
            TypeRef::Named(_) => (0, 0),
            TypeRef::Map(_) => (2, 0),
            TypeRef::Array(_) => (2, 1),
            TypeRef::Primitive(p) => match p {
                Primitive::I32 | Primitive::I64 | Primitive::U32 | Primitive::U64 => (3, 1),
                Primitive::F32 | Primitive::F64 => (4, 0),
                Primitive::Bool => (5, 0),
                Primitive::String(_) => (7, 0),
            },
            TypeRef::Option(inner) | TypeRef::Box(inner) => self.rank(inner, depth + 1),
            TypeRef::Any => (9, 0),
        }
    }

    /// Boxes cycles, breaks recursive aliases and returns the types sorted by name.
    pub fn finish(mut self) -> (Vec<TypeDef>, Vec<Diagnostic>) {
        self.drain();
        self.order_untagged();
        self.break_alias_cycles();
        self.box_cycles();
        (self.defs.into_values().collect(), self.diagnostics)
    }

    /// Sorts the variants of untagged unions, once every type they name is known.
    fn order_untagged(&mut self) {
        let mut orders = Vec::new();
        for def in self.defs.values() {
            if let TypeKind::Union(u) = &def.kind
                && u.tag.is_none()
            {
                let mut variants = u.variants.clone();
                variants.sort_by_key(|v| self.rank(&v.ty, 0));
                orders.push((def.name.clone(), variants));
            }
        }
        for (name, variants) in orders {
            if let Some(TypeKind::Union(u)) = self.defs.get_mut(&name).map(|d| &mut d.kind) {
                u.variants = variants;
            }
        }
    }

    /// Type aliases cannot be recursive at all, even through `Vec`: such aliases become
    /// `serde_json::Value`.
    fn break_alias_cycles(&mut self) {
        let aliases: Vec<String> = self
            .defs
            .values()
            .filter(|d| matches!(d.kind, TypeKind::Alias(_)))
            .map(|d| d.name.clone())
            .collect();
        let edges = |def: &TypeDef| -> Vec<String> {
            match &def.kind {
                TypeKind::Alias(ty) => {
                    let mut names = Vec::new();
                    all_names(ty, &mut names);
                    names
                }
                _ => Vec::new(),
            }
        };
        let components = strongly_connected(&self.defs, |d| {
            edges(d)
                .into_iter()
                .filter(|n| aliases.contains(n))
                .collect()
        });
        for name in aliases {
            let cyclic = components.get(&name).is_some_and(|c| c.1)
                || self
                    .defs
                    .get(&name)
                    .is_some_and(|d| edges(d).contains(&name));
            if let (true, Some(def)) = (cyclic, self.defs.get_mut(&name)) {
                def.kind = TypeKind::Alias(TypeRef::Any);
                let pointer = def.pointer.clone();
                self.warn(&pointer, "recursive type alias; using serde_json::Value");
            }
        }
    }

    /// Puts a `Box` on every field or variant whose type contains the struct by value.
    fn box_cycles(&mut self) {
        let components = strongly_connected(&self.defs, direct_edges);
        let same = |a: &str, b: &str| match (components.get(a), components.get(b)) {
            (Some(x), Some(y)) => x.0 == y.0,
            _ => false,
        };
        for def in self.defs.values_mut() {
            let owner = def.name.clone();
            let fix = |ty: &mut TypeRef| box_if(ty, &|target| same(&owner, target));
            match &mut def.kind {
                TypeKind::Struct(s) => s.fields.iter_mut().for_each(|f| fix(&mut f.ty)),
                TypeKind::Union(u) => u.variants.iter_mut().for_each(|v| fix(&mut v.ty)),
                _ => {}
            }
        }
    }
}

/// Wraps a direct (not behind `Vec` or a map) reference in `Box` when `cyclic` says so.
fn box_if(ty: &mut TypeRef, cyclic: &dyn Fn(&str) -> bool) {
    match ty {
        TypeRef::Named(name) if cyclic(name) => {
            *ty = TypeRef::Box(Box::new(TypeRef::Named(name.clone())));
        }
        TypeRef::Option(inner) => box_if(inner, cyclic),
        _ => {}
    }
}

/// Named types a value of `def` contains directly.
fn direct_edges(def: &TypeDef) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |ty: &TypeRef| direct_names(ty, &mut out);
    match &def.kind {
        TypeKind::Struct(s) => s.fields.iter().for_each(|f| push(&f.ty)),
        TypeKind::Union(u) => u.variants.iter().for_each(|v| push(&v.ty)),
        TypeKind::Alias(ty) => push(ty),
        TypeKind::StringEnum(_) | TypeKind::IntEnum(_) => {}
    }
    out
}

fn direct_names(ty: &TypeRef, out: &mut Vec<String>) {
    match ty {
        TypeRef::Named(name) => out.push(name.clone()),
        TypeRef::Option(inner) => direct_names(inner, out),
        _ => {}
    }
}

fn all_names(ty: &TypeRef, out: &mut Vec<String>) {
    match ty {
        TypeRef::Named(name) => out.push(name.clone()),
        TypeRef::Option(inner)
        | TypeRef::Box(inner)
        | TypeRef::Array(inner)
        | TypeRef::Map(inner) => {
            all_names(inner, out);
        }
        TypeRef::Primitive(_) | TypeRef::Any => {}
    }
}

/// Strongly connected components (Kosaraju, iterative so deep graphs cannot overflow the
/// stack): for each type, its component number and whether the component has more than
/// one member.
fn strongly_connected(
    defs: &BTreeMap<String, TypeDef>,
    edges: impl Fn(&TypeDef) -> Vec<String>,
) -> BTreeMap<String, (usize, bool)> {
    let names: Vec<&String> = defs.keys().collect();
    let index: BTreeMap<&String, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let forward: Vec<Vec<usize>> = defs
        .values()
        .map(|d| {
            edges(d)
                .iter()
                .filter_map(|n| index.get(n).copied())
                .collect()
        })
        .collect();
    let mut backward = vec![Vec::new(); names.len()];
    for (from, targets) in forward.iter().enumerate() {
        for &to in targets {
            backward[to].push(from);
        }
    }

    let mut order = Vec::with_capacity(names.len());
    let mut seen = vec![false; names.len()];
    for start in 0..names.len() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((node, next)) = stack.pop() {
            match forward[node].get(next) {
                Some(&child) => {
                    stack.push((node, next + 1));
                    if !seen[child] {
                        seen[child] = true;
                        stack.push((child, 0));
                    }
                }
                None => order.push(node),
            }
        }
    }

    let mut component = vec![usize::MAX; names.len()];
    let mut sizes = Vec::new();
    for &start in order.iter().rev() {
        if component[start] != usize::MAX {
            continue;
        }
        let id = sizes.len();
        let mut size = 0;
        let mut stack = vec![start];
        component[start] = id;
        while let Some(node) = stack.pop() {
            size += 1;
            for &prev in &backward[node] {
                if component[prev] == usize::MAX {
                    component[prev] = id;
                    stack.push(prev);
                }
            }
        }
        sizes.push(size);
    }

    let self_loops: BTreeSet<usize> = (0..names.len())
        .filter(|&i| forward[i].contains(&i))
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = component[i];
            let cyclic = sizes.get(id).is_some_and(|&s| s > 1) || self_loops.contains(&i);
            ((*name).clone(), (id, cyclic))
        })
        .collect()
}

/// `T`, or `Option<T>` when nullable.
fn optional(lowered: Lowered) -> TypeRef {
    if lowered.nullable && !matches!(lowered.ty, TypeRef::Any | TypeRef::Option(_)) {
        TypeRef::Option(Box::new(lowered.ty))
    } else {
        lowered.ty
    }
}

/// A variant name from its payload type.
fn variant_name(ty: &TypeRef) -> String {
    match ty {
        TypeRef::Named(name) => name.clone(),
        TypeRef::Primitive(Primitive::String(_)) => "String".into(),
        TypeRef::Primitive(Primitive::Bool) => "Boolean".into(),
        TypeRef::Primitive(Primitive::F32 | Primitive::F64) => "Number".into(),
        TypeRef::Primitive(_) => "Integer".into(),
        TypeRef::Array(inner) => format!("{}List", variant_name(inner)),
        TypeRef::Map(_) => "Map".into(),
        TypeRef::Option(inner) | TypeRef::Box(inner) => variant_name(inner),
        TypeRef::Any => "Value".into(),
    }
}

/// Discriminator values that select the schema at `reference`.
fn tag_values(reference: &str, discriminator: &openapiv3::Discriminator) -> Vec<String> {
    let name = reference.rsplit('/').next().unwrap_or_default();
    let mapped: Vec<String> = discriminator
        .mapping
        .iter()
        .filter(|(_, target)| *target == reference || target.as_str() == name)
        .map(|(value, _)| value.clone())
        .collect();
    if mapped.is_empty() {
        vec![name.to_owned()]
    } else {
        mapped
    }
}

/// Variant names for string enum values, unique and never `Other` (the catch-all).
fn enum_values(values: &[String]) -> Vec<EnumValue> {
    let mut namer = Namer::with_taken(["Other"]);
    let mut seen = BTreeSet::new();
    values
        .iter()
        .filter(|v| seen.insert(v.as_str()))
        .map(|value| {
            let base = if value.is_empty() {
                "Empty".into()
            } else {
                camel(value)
            };
            EnumValue {
                value: value.clone(),
                ident: namer.unique(crate::naming::bare(&base)),
            }
        })
        .collect()
}

/// Title and description, joined.
pub(crate) fn doc_text(schema: &Schema) -> Option<String> {
    let data = &schema.schema_data;
    match (&data.title, &data.description) {
        (Some(title), Some(description)) if title != description => {
            Some(format!("{title}\n\n{description}"))
        }
        (_, Some(text)) | (Some(text), None) => Some(text.clone()),
        (None, None) => None,
    }
}
