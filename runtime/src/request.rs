//! A prepared request: what a generated method hands to the transport.
//!
//! A [`Request`] holds everything needed to send the request again (path, query, headers
//! and a body that can be rebuilt), because a retry must send the same bytes and reqwest's
//! own request builders are consumed when sent. Generated code builds one with a short
//! chain of calls, so each operation method stays a few lines long.

use std::fmt::{self, Display};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a query parameter is serialized (OpenAPI `style` and `explode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryStyle {
    /// `form`, exploded: arrays repeat the key, objects become one key per property.
    #[default]
    Form,
    /// `form`, not exploded: arrays and objects become one comma-separated value.
    FormCompact,
    /// `deepObject`: `key[prop]=v`, nested as deep as the value goes.
    DeepObject,
    /// `spaceDelimited`: arrays joined with spaces.
    SpaceDelimited,
    /// `pipeDelimited`: arrays joined with `|`.
    PipeDelimited,
}

/// A request body that can be built again for every attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    Empty,
    /// JSON bytes.
    Json(Bytes),
    /// `application/x-www-form-urlencoded` pairs.
    Form(Vec<(String, String)>),
    /// `multipart/form-data` parts.
    Multipart(Vec<Part>),
    /// Raw bytes with a content type.
    Bytes {
        /// The body.
        bytes: Bytes,
        /// Its content type.
        content_type: String,
    },
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The field name.
    pub name: String,
    /// The content.
    pub bytes: Bytes,
    /// A file name, for file parts.
    pub file_name: Option<String>,
    /// The part's content type.
    pub content_type: Option<String>,
}

impl Part {
    /// A text field.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        let value: String = value.into();
        Self {
            name: name.into(),
            bytes: Bytes::from(value),
            file_name: None,
            content_type: None,
        }
    }

    /// A file field.
    pub fn file(
        name: impl Into<String>,
        file_name: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Self {
        Self {
            name: name.into(),
            bytes: bytes.into(),
            file_name: Some(file_name.into()),
            content_type: Some("application/octet-stream".into()),
        }
    }

    /// Sets the part's content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

/// A request ready for [`crate::Client::execute`].
///
/// # Examples
///
/// ```
/// use polvo_runtime::{Method, QueryStyle, Request};
///
/// let request = Request::new(Method::GET, "/v1/customers/{id}", "GetCustomer")
///     .path("id", "cus 1")
///     .query("expand", &["default_source"], QueryStyle::DeepObject)
///     .query("limit", &Some(10), QueryStyle::Form);
/// assert_eq!(request.rendered_path()?, "/v1/customers/cus%201");
/// # Ok::<(), polvo_runtime::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) template: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) path_params: Vec<(&'static str, String)>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Body,
    pub(crate) accept: Option<&'static str>,
    pub(crate) error: Option<String>,
    /// A whole URL (a `Link` header's next page) used instead of base URL, path and query.
    pub(crate) absolute: Option<reqwest::Url>,
}

impl Request {
    /// A request for `operation`, to the path template `template` (`/pets/{petId}`).
    pub fn new(method: Method, template: &'static str, operation: &'static str) -> Self {
        Self {
            method,
            template,
            operation,
            path_params: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            accept: None,
            error: None,
            absolute: None,
        }
    }

    /// The operation's id.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Replaces every value of query parameter `name` with `value`.
    pub fn set_query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.retain(|(n, _)| n != name);
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// The value of query parameter `name`, when set once or more (the first).
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fills `{name}` in the path template; the value is percent-encoded.
    pub fn path(mut self, name: &'static str, value: impl Display) -> Self {
        self.path_params.push((name, value.to_string()));
        self
    }

    /// Adds a query parameter serialized in `style`; `None` and null values are left out.
    pub fn query<T: Serialize + ?Sized>(
        mut self,
        name: &str,
        value: &T,
        style: QueryStyle,
    ) -> Self {
        match serde_json::to_value(value) {
            Ok(value) => push_query(&mut self.query, name, &value, style),
            Err(e) => self.fail(format!("query parameter `{name}` did not serialize: {e}")),
        }
        self
    }

    /// Adds a header; `None` is left out.
    pub fn header<T: Serialize + ?Sized>(mut self, name: &'static str, value: &T) -> Self {
        let value = match serde_json::to_value(value) {
            Ok(Value::Null) => return self,
            Ok(value) => scalar_text(&value, ","),
            Err(e) => return self.failed(format!("header `{name}` did not serialize: {e}")),
        };
        match (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            (Ok(name), Ok(value)) => self.headers.push((name, value)),
            _ => self.fail(format!(
                "header `{name}` has a name or value that cannot be sent"
            )),
        }
        self
    }

    /// Sets the `Accept` header.
    pub fn accept(mut self, media_type: &'static str) -> Self {
        self.accept = Some(media_type);
        self
    }

    /// Sends `body` as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = Body::Json(bytes.into()),
            Err(e) => self.fail(format!("body did not serialize as JSON: {e}")),
        }
        self
    }

    /// Sends `body` form-encoded, nesting objects and arrays in brackets
    /// (`metadata[key]=v`, `items[0][price]=p`), as Stripe-style APIs expect.
    pub fn form<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_value(body) {
            Ok(value) => {
                let mut pairs = Vec::new();
                flatten_brackets(&mut pairs, String::new(), &value);
                self.body = Body::Form(pairs);
            }
            Err(e) => self.fail(format!("body did not serialize as a form: {e}")),
        }
        self
    }

    /// Sends a multipart body.
    pub fn multipart(mut self, parts: Vec<Part>) -> Self {
        self.body = Body::Multipart(parts);
        self
    }

    /// Sends raw bytes.
    pub fn bytes(mut self, bytes: impl Into<Bytes>, content_type: impl Into<String>) -> Self {
        self.body = Body::Bytes {
            bytes: bytes.into(),
            content_type: content_type.into(),
        };
        self
    }

    /// The path with its parameters filled in.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when a `{name}` has no value.
    pub fn rendered_path(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(self.template.len() + 16);
        let mut rest = self.template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "path template `{}` has an unclosed `{{`",
                    self.template
                ))
            })?;
            let name = &rest[open + 1..close];
            let value = self
                .path_params
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| {
                    Error::InvalidRequest(format!("path parameter `{name}` has no value"))
                })?;
            out.extend(utf8_percent_encode(&value.1, PATH_SEGMENT));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn failed(mut self, message: String) -> Self {
        self.fail(message);
        self
    }
}

fn push_query(out: &mut Vec<(String, String)>, name: &str, value: &Value, style: QueryStyle) {
    match (value, style) {
        (Value::Null, _) => {}
        (Value::Array(items), QueryStyle::Form) => {
            for item in items.iter().filter(|v| !v.is_null()) {
                out.push((name.to_owned(), scalar_text(item, ",")));
            }
        }
        (Value::Object(map), QueryStyle::Form) => {
            for (key, item) in map.iter().filter(|(_, v)| !v.is_null()) {
                out.push((key.clone(), scalar_text(item, ",")));
            }
        }
        (Value::Object(_) | Value::Array(_), QueryStyle::DeepObject) => {
            flatten_brackets(out, name.to_owned(), value);
        }
        (_, QueryStyle::SpaceDelimited) => out.push((name.to_owned(), scalar_text(value, " "))),
        (_, QueryStyle::PipeDelimited) => out.push((name.to_owned(), scalar_text(value, "|"))),
        _ => out.push((name.to_owned(), scalar_text(value, ","))),
    }
}

/// A value as one query or header string; arrays and objects joined with `sep`.
fn scalar_text(value: &Value, sep: &str) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|v| scalar_text(v, sep))
            .collect::<Vec<_>>()
            .join(sep),
        Value::Object(map) => {
            let parts = map
                .iter()
                .flat_map(|(k, v)| [k.clone(), scalar_text(v, sep)]);
            parts.collect::<Vec<_>>().join(sep)
        }
        other => other.to_string(),
    }
}

/// Flattens a value into bracketed keys: `a[b][0]=c`.
fn flatten_brackets(out: &mut Vec<(String, String)>, prefix: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, item) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}[{key}]")
                };
                flatten_brackets(out, key, item);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten_brackets(out, format!("{prefix}[{index}]"), item);
            }
        }
        scalar => out.push((prefix, scalar_text(scalar, ","))),
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("empty"),
            Body::Json(b) => write!(f, "json ({} bytes)", b.len()),
            Body::Form(p) => write!(f, "form ({} fields)", p.len()),
            Body::Multipart(p) => write!(f, "multipart ({} parts)", p.len()),
            Body::Bytes {
                bytes,
                content_type,
            } => write!(f, "{content_type} ({} bytes)", bytes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(request: &Request) -> Vec<(&str, &str)> {
        request
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn query_styles() {
        let tags = ["a", "b"];
        let request = Request::new(Method::GET, "/", "op")
            .query("tags", &tags, QueryStyle::Form)
            .query("ids", &[1, 2], QueryStyle::FormCompact)
            .query(
                "filter",
                &json!({"created": {"gt": 5}}),
                QueryStyle::DeepObject,
            )
            .query("missing", &None::<u32>, QueryStyle::Form)
            .query("s", &["x", "y"], QueryStyle::PipeDelimited);
        assert_eq!(
            pairs(&request),
            [
                ("tags", "a"),
                ("tags", "b"),
                ("ids", "1,2"),
                ("filter[created][gt]", "5"),
                ("s", "x|y")
            ]
        );
    }

    #[test]
    fn form_nests_with_brackets() {
        let body = json!({
            "email": "a@b.c",
            "metadata": {"key": "v"},
            "items": [{"price": "p_1", "quantity": 2}],
            "gone": null,
        });
        let request = Request::new(Method::POST, "/", "op").form(&body);
        let Body::Form(fields) = request.body else {
            panic!("not a form")
        };
        assert_eq!(
            fields,
            [
                ("email".to_owned(), "a@b.c".to_owned()),
                ("items[0][price]".to_owned(), "p_1".to_owned()),
                ("items[0][quantity]".to_owned(), "2".to_owned()),
                ("metadata[key]".to_owned(), "v".to_owned()),
            ]
        );
    }

    #[test]
    fn path_is_percent_encoded_and_checked() {
        let request = Request::new(Method::GET, "/a/{x}/b/{y}", "op")
            .path("x", "a/b c")
            .path("y", 7);
        assert_eq!(request.rendered_path().unwrap(), "/a/a%2Fb%20c/b/7");
        let missing = Request::new(Method::GET, "/a/{x}", "op");
        assert_eq!(
            missing.rendered_path().unwrap_err().to_string(),
            "invalid request: path parameter `x` has no value"
        );
    }

    #[test]
    fn bad_header_value_is_an_error_not_a_panic() {
        let request = Request::new(Method::GET, "/", "op").header("x-a", "line\nbreak");
        assert!(request.error.is_some());
    }
}
