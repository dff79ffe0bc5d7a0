//! The intermediate representation: what the client will contain, as plain data.
//!
//! Nothing here knows about tokens or files. Names are already Rust names (chosen and
//! de-duplicated by [`crate::lower`]), so emission is a mechanical walk. Every collection
//! that reaches generated code is sorted or kept in document order, never hash order.

/// A whole API, ready for checks and emission.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// Names of the service, crate and client.
    pub service: Service,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`.
    pub description: Option<String>,
    /// Operations, sorted by group and method name.
    pub operations: Vec<Operation>,
    /// Named types, sorted by name.
    pub types: Vec<TypeDef>,
    /// Security schemes, sorted by name.
    pub security: Vec<SecurityScheme>,
}

/// The names a generated crate is built around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service name for limits and logs, and the module name in build.rs mode
    /// (`petstore`).
    pub name: String,
    /// Crate name (`polvo-petstore`).
    pub crate_name: String,
    /// Client type name (`PetstoreClient`).
    pub client: String,
    /// The base URL the builder starts with, when one is known.
    pub base_url: Option<String>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `operationId` (or one made from method and path), as sent to the runtime.
    pub id: String,
    /// Upper-case HTTP method (`GET`).
    pub method: String,
    /// Path template (`/pets/{petId}`).
    pub path: String,
    /// JSON pointer of the operation in the document.
    pub pointer: String,
    /// Resource group: snake-case accessor on the client (`pets`).
    pub group: String,
    /// Method name on the group handle (`list`).
    pub name: String,
    /// Upper-camel-case stem for types made for this operation (`ListPets`).
    pub type_stem: String,
    /// `summary`.
    pub summary: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// Whether the operation is deprecated.
    pub deprecated: bool,
    /// Parameters, path parameters first in template order.
    pub params: Vec<Param>,
    /// Request bodies, one per media type, the preferred one first.
    pub bodies: Vec<RequestBody>,
    /// Responses, by status.
    pub responses: Vec<Response>,
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ParamLocation {
    /// In the path template.
    Path,
    /// In the query string.
    Query,
    /// In a header.
    Header,
}

/// How a parameter is serialized (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamStyle {
    /// `simple` (path and header).
    Simple,
    /// `form` (query).
    Form,
    /// `deepObject` (query).
    DeepObject,
    /// `spaceDelimited` (query).
    SpaceDelimited,
    /// `pipeDelimited` (query).
    PipeDelimited,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The name on the wire.
    pub name: String,
    /// The Rust argument or field name.
    pub ident: String,
    /// Where it goes.
    pub location: ParamLocation,
    /// Its style.
    pub style: ParamStyle,
    /// Its `explode` flag (defaults applied).
    pub explode: bool,
    /// Whether it must be given.
    pub required: bool,
    /// Its type.
    pub ty: TypeRef,
    /// `description`.
    pub description: Option<String>,
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Encoding {
    /// JSON.
    Json,
    /// `application/x-www-form-urlencoded`, nested with brackets.
    Form,
    /// `multipart/form-data`.
    Multipart,
    /// Text (`text/*`).
    Text,
    /// Raw bytes (anything else).
    Bytes,
}

/// A request body in one media type.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    /// The media type (`application/json`).
    pub media_type: String,
    /// How it is encoded.
    pub encoding: Encoding,
    /// Its type; `Any` for bytes and text.
    pub ty: TypeRef,
    /// Fields of a multipart body, in document order.
    pub parts: Vec<MultipartField>,
    /// Method name for this media type (`create`, `create_form`).
    pub method: String,
}

/// One field of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartField {
    /// The part name on the wire.
    pub name: String,
    /// The Rust field name.
    pub ident: String,
    /// What it holds.
    pub kind: PartKind,
    /// Whether it must be sent.
    pub required: bool,
}

/// What a multipart field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// One file (`format: binary`).
    File,
    /// Several files (an array of binaries), one part each.
    Files,
    /// One text value.
    Text,
    /// Several text values, one part each.
    Texts,
}

/// A response status as the document writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// One code (`200`).
    Code(u16),
    /// A range (`2XX` is `Range(2)`).
    Range(u16),
    /// `default`.
    Default,
}

impl Status {
    /// Whether the status is a success (2xx).
    pub fn is_success(self) -> bool {
        match self {
            Self::Code(code) => (200..300).contains(&code),
            Self::Range(range) => range == 2,
            Self::Default => false,
        }
    }
}

/// A response in one status.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// `description`.
    pub description: String,
    /// Bodies by media type; empty when the response has no body.
    pub contents: Vec<Content>,
}

/// A response body in one media type.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// The media type.
    pub media_type: String,
    /// How it is decoded: JSON, text or bytes.
    pub encoding: Encoding,
    /// The type of a JSON body.
    pub ty: TypeRef,
}

/// A security scheme, as far as the builder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityScheme {
    /// The scheme's name in `components.securitySchemes`.
    pub name: String,
    /// What it asks for.
    pub kind: SecurityKind,
    /// `description`.
    pub description: Option<String>,
}

/// The kinds of credentials a builder helper can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityKind {
    /// A bearer token (HTTP bearer, OAuth 2, OpenID Connect).
    Bearer,
    /// HTTP basic.
    Basic,
    /// An API key in a header.
    HeaderKey(String),
    /// An API key in a query parameter.
    QueryKey(String),
}

/// A reference to a type, as used by fields, parameters and bodies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TypeRef {
    /// A named type in `types`.
    Named(String),
    /// A primitive.
    Primitive(Primitive),
    /// `Vec<T>`.
    Array(Box<TypeRef>),
    /// `BTreeMap<String, T>`.
    Map(Box<TypeRef>),
    /// `Option<T>`, for nullable values.
    Option(Box<TypeRef>),
    /// `Box<T>`, to break a cycle.
    Box(Box<TypeRef>),
    /// `serde_json::Value`.
    Any,
}

/// Primitive types, with the format that chose them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Primitive {
    /// `String`, with its `format` when it has one (`date-time` stays a string).
    String(Option<String>),
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `bool`.
    Bool,
}

/// A named type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    /// The Rust name.
    pub name: String,
    /// Where it comes from in the document.
    pub pointer: String,
    /// Title and description.
    pub doc: Option<String>,
    /// What it is.
    pub kind: TypeKind,
}

/// The shapes a named type can have.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// An object with known properties.
    Struct(Struct),
    /// A string enum; emitted with a catch-all variant.
    StringEnum(Vec<EnumValue>),
    /// An integer enum; emitted as a newtype with constants, which accepts any integer.
    IntEnum(Vec<i64>),
    /// `oneOf`/`anyOf`.
    Union(Union),
    /// Another name for a type.
    Alias(TypeRef),
}

/// A struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// Fields in document order.
    pub fields: Vec<Field>,
    /// `additionalProperties` kept in a flattened map, with the field name for it.
    pub additional: Option<(String, TypeRef)>,
}

/// A struct field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The property name on the wire.
    pub name: String,
    /// The Rust field name.
    pub ident: String,
    /// Its type, without the `Option` that `required` and `nullable` add.
    pub ty: TypeRef,
    /// Whether the property must be present.
    pub required: bool,
    /// Whether the value may be `null`.
    pub nullable: bool,
    /// Description.
    pub doc: Option<String>,
}

/// A value of a string enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumValue {
    /// The value on the wire.
    pub value: String,
    /// The variant name.
    pub ident: String,
}

/// A union.
#[derive(Debug, Clone, PartialEq)]
pub struct Union {
    /// Variants, in the order they are tried when untagged.
    pub variants: Vec<Variant>,
    /// The discriminator property, for a tagged union.
    pub tag: Option<String>,
}

/// A union variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The variant name.
    pub ident: String,
    /// Its payload type.
    pub ty: TypeRef,
    /// Discriminator values selecting it (tagged unions only).
    pub tags: Vec<String>,
}
