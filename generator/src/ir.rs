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
    /// The rate-limit policy from the annotations file.
    pub policy: Policy,
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
    /// `tags`, in document order.
    pub tags: Vec<String>,
    /// How the operation pages, when a pagination rule matches it.
    pub paging: Option<Paging>,
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

/// The rate-limit policy a client starts with; empty without annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Buckets, sorted by name.
    pub buckets: Vec<Bucket>,
    /// Operations spending other buckets than `default`, or more than 1, sorted by id.
    pub operations: Vec<OperationCost>,
    /// Modes, in file order (the first that applies wins).
    pub modes: Vec<Mode>,
    /// Which rate-limit headers to read; `None` reads them all.
    pub tracking: Option<Tracking>,
    /// Retry settings that differ from the runtime's defaults.
    pub retry: Option<Retry>,
    /// The bulk engine's concurrency cap.
    pub bulk_max_concurrency: Option<u32>,
    /// Shared quota, when configured.
    pub store: Option<Store>,
}

/// A named set of limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's name.
    pub name: String,
    /// Limits enforced together.
    pub limits: Vec<Rate>,
    /// Requests of the bucket in flight at once.
    pub max_in_flight: Option<u32>,
}

/// `count` units per `period_nanos`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units per period, at least 1.
    pub count: u32,
    /// The period, in nanoseconds, at least `count`.
    pub period_nanos: u64,
    /// Units at once, at least 1.
    pub burst: u32,
}

/// Which buckets an operation spends, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCost {
    /// The operation id.
    pub id: String,
    /// Buckets spent together.
    pub buckets: Vec<String>,
    /// Units spent in each.
    pub cost: u32,
}

/// Bucket overrides chosen by credential or base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    /// The mode's name.
    pub name: String,
    /// When it applies.
    pub when: ModeWhen,
    /// The buckets it changes, sorted by name.
    pub buckets: Vec<Bucket>,
}

/// When a mode applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeWhen {
    /// The credential starts with this prefix.
    KeyPrefix(String),
    /// The base URL is this one.
    BaseUrl(String),
}

/// The response headers a client reads, every list resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// Delay in seconds or an HTTP date.
    pub retry_after: Vec<String>,
    /// Delay in milliseconds.
    pub retry_after_ms: Vec<String>,
    /// Units per window.
    pub limit: Vec<String>,
    /// Units left.
    pub remaining: Vec<String>,
    /// When the window resets.
    pub reset: Vec<String>,
    /// Units used.
    pub used: Vec<String>,
    /// Which bucket the values describe.
    pub resource: Vec<String>,
    /// Whether the IETF structured `RateLimit` and `RateLimit-Policy` fields are read.
    pub ietf: bool,
    /// How reset values are read.
    pub reset_kind: ResetKind,
}

/// How a reset header's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetKind {
    /// Guessed from its size.
    #[default]
    Auto,
    /// Seconds since the epoch.
    Epoch,
    /// Seconds from now.
    Delay,
    /// Milliseconds since the epoch.
    EpochMs,
}

/// Retry settings; `None` keeps the runtime's default for that setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retry {
    /// Statuses retried.
    pub statuses: Option<Vec<u16>>,
    /// Attempts in all.
    pub attempts: Option<u32>,
    /// Backoff base and maximum, in nanoseconds.
    pub backoff: Option<(u64, u64)>,
    /// The longest server-asked delay slept through, in nanoseconds.
    pub max_retry_after: Option<u64>,
    /// The retry budget; `Some(None)` turns it off.
    pub budget: Option<Option<Budget>>,
    /// The idempotency key header.
    pub idempotency_header: Option<String>,
    /// Methods safe to repeat without a key (upper case).
    pub idempotent_methods: Option<Vec<String>>,
    /// The server's retry hint header.
    pub hint_header: Option<String>,
}

/// A retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Retries per 1000 first attempts.
    pub per_mille: u32,
    /// Retries always allowed per second.
    pub min_per_second: u32,
}

/// Quota shared through Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// The environment variable holding the Redis URL.
    pub url_env: String,
    /// While Redis is unreachable: `Some(per_mille)` of each limit alone, `None` fails.
    pub local_share_per_mille: Option<u32>,
}

/// How an operation pages, and what its items are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// The auto-paging method's name (`list_pages`).
    pub method: String,
    /// The scheme.
    pub scheme: PagingScheme,
    /// The type of one item.
    pub item: TypeRef,
}

/// A pagination scheme, as the runtime's `Pagination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagingScheme {
    /// A cursor parameter.
    Cursor {
        /// The request parameter.
        param: String,
        /// The response field holding the items.
        items: String,
        /// The response field saying there is more.
        has_more: Option<String>,
        /// Where the next cursor comes from.
        next: CursorFrom,
    },
    /// An offset parameter.
    Offset {
        /// The request parameter.
        param: String,
        /// The response field holding the items.
        items: String,
    },
    /// A page number parameter.
    Page {
        /// The request parameter.
        param: String,
        /// The response field holding the items.
        items: String,
        /// The first page's number.
        first: u64,
    },
    /// RFC 8288 `Link` headers.
    LinkHeader {
        /// The response field holding the items; empty for a top-level array.
        items: String,
    },
}

/// Where a cursor comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorFrom {
    /// A field of the last item.
    LastItem(String),
    /// A field of the response.
    Response(String),
}
