//! Loading: an OpenAPI 3.0 document from YAML or JSON, with every `$ref` made local.
//!
//! The format is detected from the content (a document whose first character is `{` is
//! JSON), never from the file name. Syntax errors carry the parser's line and column.
//!
//! Design note: `openapiv3` gives a typed model but no locations and no multi-file
//! support, so loading happens in two passes over an untyped tree that keeps key order
//! (`serde_yaml::Value`). The first pass bundles: each file reached through a relative
//! `$ref` (`common.yaml#/components/schemas/Id`) is embedded under the extension key
//! [`EXTERNAL_KEY`] and the reference rewritten to point there, so later stages only ever
//! see local references. The second pass checks that every reference resolves and reports
//! the first that does not with the JSON pointer of the `$ref`. Only then is the tree
//! deserialized into `openapiv3::OpenAPI`; resolution later is a pointer walk plus a
//! deserialization of the target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openapiv3::{OpenAPI, ReferenceOr};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::error::{Error, Location};

/// The extension key under which documents reached through external `$ref`s are embedded.
pub const EXTERNAL_KEY: &str = "x-polvo-external";

/// A loaded, bundled and typed OpenAPI document.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The entry document's path.
    pub path: PathBuf,
    /// The typed model.
    pub api: OpenAPI,
    /// Every file read, entry document first (for `cargo:rerun-if-changed`).
    pub files: Vec<PathBuf>,
    root: Value,
}

impl Spec {
    /// Loads the document at `path` and every file it references.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] for an unreadable file, [`Error::Parse`] for invalid YAML or JSON or
    /// a document that is not an OpenAPI object, [`Error::Version`] for Swagger 2.0 and
    /// OpenAPI 3.1, [`Error::Ref`] for a `$ref` that does not resolve.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = read(path)?;
        let root = parse_text(path, &text)?;
        check_version(path, &text, &root)?;

        let mut bundler = Bundler::default();
        let mut root = root;
        bundler.rewrite(&mut root, path, "", false)?;
        let mut files = vec![path.to_path_buf()];
        if !bundler.docs.is_empty() {
            let mut external = serde_yaml::Mapping::new();
            for (index, (file, doc)) in bundler.docs.into_iter().enumerate() {
                external.insert(Value::String(index.to_string()), doc);
                files.push(file);
            }
            if let Value::Mapping(map) = &mut root {
                map.insert(Value::String(EXTERNAL_KEY.into()), Value::Mapping(external));
            }
        }
        check_refs(&root, &root, &mut String::from("#"), &files, false)?;

        let api = serde_yaml::from_value::<OpenAPI>(root.clone())
            .map_err(|e| typed_error(path, &text, &e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            api,
            files,
            root,
        })
    }

    /// The node a local reference (`#/components/schemas/Pet`) points to.
    pub fn lookup(&self, reference: &str) -> Option<&Value> {
        lookup(&self.root, reference)
    }

    /// Deserializes the target of a local reference, following chains of references.
    ///
    /// Returns a message (for a diagnostic) when the target is missing or has another
    /// shape than `T`.
    pub fn resolve_ref<T: DeserializeOwned>(&self, reference: &str) -> Result<T, String> {
        let mut reference = reference.to_owned();
        for _ in 0..32 {
            let node = self
                .lookup(&reference)
                .ok_or_else(|| format!("$ref `{reference}` does not resolve"))?;
            match node.get("$ref").and_then(Value::as_str) {
                Some(next) => reference = next.to_owned(),
                None => {
                    return serde_yaml::from_value(node.clone())
                        .map_err(|e| format!("$ref `{reference}` has an unexpected shape: {e}"));
                }
            }
        }
        Err(format!("$ref `{reference}` is part of a reference loop"))
    }

    /// An item, or the target of its reference.
    pub fn resolve<T: DeserializeOwned + Clone>(&self, item: &ReferenceOr<T>) -> Result<T, String> {
        match item {
            ReferenceOr::Item(item) => Ok(item.clone()),
            ReferenceOr::Reference { reference } => self.resolve_ref(reference),
        }
    }

    /// A boxed item, or the target of its reference.
    pub fn resolve_boxed<T: DeserializeOwned + Clone>(
        &self,
        item: &ReferenceOr<Box<T>>,
    ) -> Result<T, String> {
        match item {
            ReferenceOr::Item(item) => Ok((**item).clone()),
            ReferenceOr::Reference { reference } => self.resolve_ref(reference),
        }
    }
}

/// Parses YAML or JSON, chosen by the first non-blank character.
///
/// # Errors
///
/// [`Error::Parse`] with the parser's line and column.
pub fn parse_text(path: &Path, text: &str) -> Result<Value, Error> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(text).map_err(|e| Error::Parse {
            file: path.to_path_buf(),
            location: Location::LineColumn {
                line: e.line(),
                column: e.column(),
            },
            message: format!("invalid JSON: {}", strip_position(&e.to_string())),
        })
    } else {
        serde_yaml::from_str::<Value>(text).map_err(|e| yaml_error(path, &e, "invalid YAML"))
    }
}

/// Reads a file into a string.
///
/// # Errors
///
/// [`Error::Read`].
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: path.to_path_buf(),
        source,
    })
}

/// A serde_yaml error as [`Error::Parse`], with its location when it has one.
pub(crate) fn yaml_error(path: &Path, e: &serde_yaml::Error, what: &str) -> Error {
    let location = match e.location() {
        Some(at) => Location::LineColumn {
            line: at.line(),
            column: at.column(),
        },
        None => Location::File,
    };
    Error::Parse {
        file: path.to_path_buf(),
        location,
        message: format!("{what}: {}", strip_position(&e.to_string())),
    }
}

/// Drops the " at line X column Y" suffix parsers add, since the location is printed
/// separately.
fn strip_position(message: &str) -> String {
    let cut = message.find(" at line ").unwrap_or(message.len());
    message[..cut].to_owned()
}

/// A typed-model error: located by deserializing the entry text directly, which fails at
/// the same place when the problem is in the entry document.
fn typed_error(path: &Path, text: &str, message: &str) -> Error {
    let located = if text.trim_start().starts_with('{') {
        serde_json::from_str::<OpenAPI>(text)
            .err()
            .map(|e| (e.line(), e.column(), strip_position(&e.to_string())))
    } else {
        serde_yaml::from_str::<OpenAPI>(text).err().and_then(|e| {
            let at = e.location()?;
            Some((at.line(), at.column(), strip_position(&e.to_string())))
        })
    };
    let (location, message) = match located {
        Some((line, column, message)) => (Location::LineColumn { line, column }, message),
        None => (Location::File, strip_position(message)),
    };
    Error::Parse {
        file: path.to_path_buf(),
        location,
        message: format!("not a valid OpenAPI 3.0 document: {message}"),
    }
}

/// Rejects everything but OpenAPI 3.0.x, pointing at the version field.
fn check_version(path: &Path, text: &str, root: &Value) -> Result<(), Error> {
    let version_error = |key: &str, message: String| Error::Version {
        file: path.to_path_buf(),
        location: key_location(text, key).unwrap_or(Location::Pointer(format!("#/{key}"))),
        message,
    };
    if !root.is_mapping() {
        return Err(Error::Parse {
            file: path.to_path_buf(),
            location: Location::File,
            message: "not an OpenAPI document: the top level is not an object".into(),
        });
    }
    if let Some(swagger) = root.get("swagger") {
        let found = scalar_text(swagger);
        return Err(version_error(
            "swagger",
            format!("swagger {found} is not supported; convert the document to OpenAPI 3.0"),
        ));
    }
    let Some(version) = root.get("openapi") else {
        return Err(Error::Version {
            file: path.to_path_buf(),
            location: Location::File,
            message: "not an OpenAPI document: no `openapi` version field".into(),
        });
    };
    let version = scalar_text(version);
    if version.starts_with("3.0") {
        return Ok(());
    }
    let message = if version.starts_with("3.1") {
        format!("openapi {version} is not supported yet; only 3.0.x documents are")
    } else {
        format!("openapi {version} is not supported; only 3.0.x documents are")
    };
    Err(version_error("openapi", message))
}

/// The line and column of a top-level key, found in the raw text.
fn key_location(text: &str, key: &str) -> Option<Location> {
    let quoted = format!("\"{key}\"");
    text.lines().enumerate().find_map(|(index, line)| {
        let column = line
            .find(&quoted)
            .or_else(|| line.starts_with(&format!("{key}:")).then_some(0))?;
        Some(Location::LineColumn {
            line: index + 1,
            column: column + 1,
        })
    })
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "(not a scalar)".into(),
    }
}

/// Collects external documents and rewrites references to local ones.
#[derive(Default)]
struct Bundler {
    /// Canonical file path to its rewritten tree, in the order first reached.
    docs: Vec<(PathBuf, Value)>,
    index: BTreeMap<PathBuf, usize>,
}

impl Bundler {
    /// Rewrites every `$ref` in `node`, which lives in `file` and is embedded under
    /// `prefix` (empty for the entry document).
    /// `names` is set when the keys of `node` are property names rather than keywords, so
    /// a property called `example` is still walked.
    fn rewrite(
        &mut self,
        node: &mut Value,
        file: &Path,
        prefix: &str,
        names: bool,
    ) -> Result<(), Error> {
        match node {
            Value::Mapping(map) => {
                for (key, child) in map.iter_mut() {
                    let key = key.as_str().unwrap_or_default();
                    if key == "$ref" && !names {
                        if let Value::String(reference) = child {
                            *reference = self.local_ref(reference, file, prefix)?;
                        }
                    } else if names || !is_payload_key(key) {
                        self.rewrite(child, file, prefix, key == "properties" && !names)?;
                    }
                }
                Ok(())
            }
            Value::Sequence(items) => items
                .iter_mut()
                .try_for_each(|item| self.rewrite(item, file, prefix, false)),
            Value::Tagged(tagged) => self.rewrite(&mut tagged.value, file, prefix, false),
            _ => Ok(()),
        }
    }

    fn local_ref(&mut self, reference: &str, file: &Path, prefix: &str) -> Result<String, Error> {
        let (target, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if target.is_empty() {
            return Ok(format!("#{prefix}{fragment}"));
        }
        let ref_error = |reason: String| Error::Ref {
            file: file.to_path_buf(),
            pointer: format!("#{prefix}"),
            reference: reference.to_owned(),
            reason,
        };
        if target.contains("://") {
            return Err(ref_error("remote references are not supported".into()));
        }
        let joined = file.parent().unwrap_or(Path::new(".")).join(target);
        let canonical = joined
            .canonicalize()
            .map_err(|e| ref_error(format!("cannot read {}: {e}", joined.display())))?;
        let index = match self.index.get(&canonical) {
            Some(index) => *index,
            None => {
                let index = self.docs.len();
                self.index.insert(canonical.clone(), index);
                self.docs.push((joined.clone(), Value::Null));
                let text = read(&joined)?;
                let mut doc = parse_text(&joined, &text)?;
                let prefix = format!("/{EXTERNAL_KEY}/{index}");
                self.rewrite(&mut doc, &joined, &prefix, false)?;
                self.docs[index].1 = doc;
                index
            }
        };
        Ok(format!("#/{EXTERNAL_KEY}/{index}{fragment}"))
    }
}

/// Keys whose values are example payloads, where a `$ref` key is data, not a reference.
fn is_payload_key(key: &str) -> bool {
    key == "example" || key == "examples"
}

/// Checks that every `$ref` under `node` resolves in `root`; `names` as in
/// [`Bundler::rewrite`].
fn check_refs(
    root: &Value,
    node: &Value,
    pointer: &mut String,
    files: &[PathBuf],
    names: bool,
) -> Result<(), Error> {
    match node {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key_text(key);
                if !names && is_payload_key(&key) {
                    continue;
                }
                if key == "$ref" && !names {
                    let reference = child.as_str().unwrap_or_default();
                    if lookup(root, reference).is_none() {
                        return Err(unresolved(pointer, reference, files));
                    }
                    continue;
                }
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_pointer(&key));
                check_refs(root, child, pointer, files, key == "properties" && !names)?;
                pointer.truncate(len);
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{index}"));
                check_refs(root, item, pointer, files, false)?;
                pointer.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An unresolved reference, reported against the file that holds it.
fn unresolved(pointer: &str, reference: &str, files: &[PathBuf]) -> Error {
    let external = format!("#/{EXTERNAL_KEY}/");
    let (file, pointer, reference) = match pointer.strip_prefix(&external) {
        Some(rest) => {
            let (index, rest) = rest.split_once('/').unwrap_or((rest, ""));
            let file = index
                .parse::<usize>()
                .ok()
                .and_then(|i| files.get(i + 1))
                .or(files.first());
            let local = |r: &str| {
                r.strip_prefix(&format!("{external}{index}"))
                    .map_or(r.to_owned(), |r| format!("#{r}"))
            };
            (file, format!("#/{rest}"), local(reference))
        }
        None => (files.first(), pointer.to_owned(), reference.to_owned()),
    };
    Error::Ref {
        file: file.cloned().unwrap_or_default(),
        pointer,
        reference,
        reason: "no such node in the document".into(),
    }
}

/// Walks a local reference (`#/a/b~1c/0`) through mappings and sequences.
fn lookup<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    let mut node = root;
    for raw in pointer.strip_prefix('/')?.split('/') {
        let segment = unescape_pointer(raw);
        node = match node {
            Value::Mapping(map) => map
                .iter()
                .find(|(key, _)| key_text(key) == segment)
                .map(|(_, value)| value)?,
            Value::Sequence(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => scalar_text(other),
    }
}

/// Escapes one JSON pointer segment (`~` as `~0`, `/` as `~1`).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(segment: &str) -> String {
    let decoded = percent_decode(segment);
    decoded.replace("~1", "/").replace("~0", "~")
}

/// Decodes `%XX` escapes, which some documents use in references (`#/paths/%7Bid%7D`).
fn percent_decode(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_owned();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
