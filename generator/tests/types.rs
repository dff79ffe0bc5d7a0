//! Type mapping edge cases, checked on the IR of small documents.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors, as tests do"
)]

use polvo_gen::ir::{Api, Field, TypeDef, TypeKind, TypeRef};
use polvo_gen::spec::Spec;

fn lower(schemas: &str) -> (Api, Vec<polvo_gen::Diagnostic>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.yaml");
    let text = format!(
        "openapi: 3.0.3\ninfo: {{title: Test, version: '1'}}\npaths: {{}}\ncomponents:\n  schemas:\n{}",
        schemas
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    std::fs::write(&path, text).unwrap();
    let spec = Spec::load(&path).unwrap();
    polvo_gen::lower::lower(&spec, &Default::default(), None)
}

fn def<'a>(api: &'a Api, name: &str) -> &'a TypeDef {
    api.types
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no type {name} in {:?}", names(api)))
}

fn names(api: &Api) -> Vec<&str> {
    api.types.iter().map(|t| t.name.as_str()).collect()
}

fn fields(api: &Api, name: &str) -> Vec<Field> {
    match &def(api, name).kind {
        TypeKind::Struct(s) => s.fields.clone(),
        other => panic!("{name} is not a struct: {other:?}"),
    }
}

fn named(name: &str) -> TypeRef {
    TypeRef::Named(name.into())
}

#[test]
fn nullable_refs_keep_the_named_type() {
    let (api, _) = lower(
        "Owner: {type: object, properties: {name: {type: string}}}\n\
         MaybeOwner: {type: object, nullable: true, properties: {x: {type: string}}}\n\
         Pet:\n  type: object\n  required: [owner]\n  properties:\n    \
         owner: {allOf: [{$ref: '#/components/schemas/Owner'}], nullable: true}\n    \
         other: {$ref: '#/components/schemas/MaybeOwner'}\n",
    );
    let fields = fields(&api, "Pet");
    assert_eq!(
        (fields[0].ty.clone(), fields[0].nullable, fields[0].required),
        (named("Owner"), true, true)
    );
    assert_eq!(
        (fields[1].ty.clone(), fields[1].nullable, fields[1].required),
        (named("MaybeOwner"), true, false)
    );
}

#[test]
fn enums_get_variants_and_integer_enums_stay_open() {
    let (api, _) = lower(
        "Status: {type: string, enum: [active, in-review, '', Other, 2fa]}\n\
         Level: {type: integer, enum: [3, 1, -1]}\n",
    );
    let TypeKind::StringEnum(values) = &def(&api, "Status").kind else {
        panic!("not an enum");
    };
    let idents: Vec<&str> = values.iter().map(|v| v.ident.as_str()).collect();
    // `Other` is the catch-all, so the value "Other" is renamed.
    assert_eq!(idents, ["Active", "InReview", "Empty", "Other2", "V2fa"]);
    assert_eq!(def(&api, "Level").kind, TypeKind::IntEnum(vec![-1, 1, 3]));
}

#[test]
fn untagged_unions_try_specific_variants_first() {
    let (api, _) = lower(
        "Loose: {type: object, properties: {a: {type: string}}}\n\
         Strict: {type: object, required: [a, b], properties: {a: {type: string}, b: {type: string}}}\n\
         Value:\n  oneOf:\n    - {type: string}\n    - {type: number}\n    - {type: integer}\n    \
         - {$ref: '#/components/schemas/Loose'}\n    - {$ref: '#/components/schemas/Strict'}\n    \
         - {type: array, items: {type: string}}\n",
    );
    let TypeKind::Union(union) = &def(&api, "Value").kind else {
        panic!("not a union");
    };
    let order: Vec<&str> = union.variants.iter().map(|v| v.ident.as_str()).collect();
    assert_eq!(
        order,
        [
            "Strict",
            "Loose",
            "StringList",
            "Integer",
            "Number",
            "String"
        ]
    );
    assert!(union.tag.is_none());
}

#[test]
fn discriminators_make_tagged_unions() {
    let (api, _) = lower(
        "Cat: {type: object, properties: {kind: {type: string}}}\n\
         Dog: {type: object, properties: {kind: {type: string}}}\n\
         Pet:\n  oneOf: [{$ref: '#/components/schemas/Cat'}, {$ref: '#/components/schemas/Dog'}]\n  \
         discriminator: {propertyName: kind, mapping: {kitty: '#/components/schemas/Cat'}}\n",
    );
    let TypeKind::Union(union) = &def(&api, "Pet").kind else {
        panic!("not a union");
    };
    assert_eq!(union.tag.as_deref(), Some("kind"));
    let tags: Vec<&[String]> = union.variants.iter().map(|v| v.tags.as_slice()).collect();
    assert_eq!(tags, [&["kitty".to_owned()][..], &["Dog".to_owned()][..]]);
}

#[test]
fn name_collisions_and_keywords_are_resolved() {
    let (api, _) = lower(
        "pet: {type: object, properties: {a-b: {type: string}, a_b: {type: string}, type: {type: string}, self: {type: string}}}\n\
         Pet: {type: string}\n\
         Option: {type: string}\n\
         Self: {type: string}\n",
    );
    assert_eq!(names(&api), ["OptionType", "Pet", "Pet2", "SelfType"]);
    let idents: Vec<String> = fields(&api, "Pet").into_iter().map(|f| f.ident).collect();
    assert_eq!(idents, ["a_b", "a_b_2", "r#type", "self_"]);
}

#[test]
fn recursive_types_are_boxed_only_where_needed() {
    let (api, diagnostics) = lower(
        "Node:\n  type: object\n  properties:\n    next: {$ref: '#/components/schemas/Node'}\n    \
         children: {type: array, items: {$ref: '#/components/schemas/Node'}}\n\
         A: {type: object, properties: {b: {$ref: '#/components/schemas/B'}}}\n\
         B: {type: object, properties: {a: {$ref: '#/components/schemas/A'}}}\n\
         List: {type: array, items: {$ref: '#/components/schemas/List'}}\n",
    );
    let node = fields(&api, "Node");
    assert_eq!(node[0].ty, TypeRef::Box(Box::new(named("Node"))));
    assert_eq!(node[1].ty, TypeRef::Array(Box::new(named("Node"))));
    assert_eq!(fields(&api, "A")[0].ty, TypeRef::Box(Box::new(named("B"))));
    // A type alias cannot recurse even through Vec: it falls back, with a warning.
    assert_eq!(def(&api, "List").kind, TypeKind::Alias(TypeRef::Any));
    assert!(
        diagnostics
            .iter()
            .any(|d| d.pointer == "#/components/schemas/List")
    );
}

#[test]
fn all_of_merges_and_unmergeable_parts_fall_back_with_a_pointer() {
    let (api, diagnostics) = lower(
        "Base: {type: object, required: [id], properties: {id: {type: string}}}\n\
         Full:\n  allOf:\n    - {$ref: '#/components/schemas/Base'}\n    \
         - {type: object, properties: {extra: {type: integer}}}\n\
         Odd:\n  allOf: [{type: string}, {type: integer}]\n\
         Never: {not: {type: string}}\n",
    );
    let full: Vec<(String, bool)> = fields(&api, "Full")
        .into_iter()
        .map(|f| (f.name, f.required))
        .collect();
    assert_eq!(full, [("id".to_owned(), true), ("extra".to_owned(), false)]);
    assert_eq!(def(&api, "Odd").kind, TypeKind::Alias(TypeRef::Any));
    let pointers: Vec<&str> = diagnostics.iter().map(|d| d.pointer.as_str()).collect();
    assert!(
        pointers.contains(&"#/components/schemas/Odd"),
        "{pointers:?}"
    );
    assert!(
        pointers.contains(&"#/components/schemas/Never"),
        "{pointers:?}"
    );
}

#[test]
fn external_refs_are_bundled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("common.yaml"),
        "components:\n  schemas:\n    Id: {type: string}\n    Thing: {type: object, properties: {id: {$ref: '#/components/schemas/Id'}}}\n",
    )
    .unwrap();
    let path = dir.path().join("api.yaml");
    std::fs::write(
        &path,
        "openapi: 3.0.0\ninfo: {title: T, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    \
         Local: {type: object, properties: {thing: {$ref: 'common.yaml#/components/schemas/Thing'}}}\n",
    )
    .unwrap();
    let spec = Spec::load(&path).unwrap();
    assert_eq!(spec.files.len(), 2);
    let (api, diagnostics) = polvo_gen::lower::lower(&spec, &Default::default(), None);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(fields(&api, "Local")[0].ty, named("Thing"));
    assert_eq!(fields(&api, "Thing")[0].ty, named("Id"));
}
