//! Loading the service's annotations file (`polvo.yaml`): names, limits, groups, modes,
//! header tracking, retries, pagination, bulk and store settings.
//!
//! The format is documented in `docs/annotations.md`. Reading is done by hand over a
//! `serde_yaml::Value` rather than by derived `Deserialize`, because a derive stops at
//! the first unknown key or bad value while the format promises every problem in one
//! run. Each node keeps its path ([`At`]); a problem is located only once found, by
//! [`locate`]. Only invalid YAML stops reading at once.
//!
//! What can be checked from the file alone is checked here (unknown keys, rates,
//! durations, bucket names); what needs the spec (operation ids, tags, paths, parameter
//! names) is checked by [`crate::check::annotations`] after lowering.

mod locate;
mod read;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem};
use crate::ir::{Rate, Retry, Store, Tracking};
use crate::spec::{read, yaml_error};

pub use locate::{At, Seg, locate};

/// Everything an annotations file says, with where each name was written.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    /// The `service` section.
    pub service: Option<ServiceAnnotations>,
    /// `buckets`, in file order.
    pub buckets: Vec<Bucket>,
    /// `groups`, in file order.
    pub groups: Vec<Group>,
    /// `modes`, in file order.
    pub modes: Vec<Mode>,
    /// `tracking`, resolved to header lists.
    pub tracking: Option<Tracking>,
    /// `retry`.
    pub retry: Option<Retry>,
    /// `pagination` rules, in file order.
    pub pagination: Vec<PaginationRule>,
    /// `bulk.max_concurrency`.
    pub bulk_max_concurrency: Option<u32>,
    /// `store`.
    pub store: Option<Store>,
    source: Option<Source>,
}

/// The file the annotations came from, to locate problems found later.
#[derive(Debug, Clone)]
struct Source {
    file: PathBuf,
    text: String,
}

/// The `service` section of an annotations file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAnnotations {
    /// The service name, used for limits, logs and the module name (`petstore`).
    pub name: Option<String>,
    /// The generated crate's name (`polvo-petstore`).
    pub crate_name: Option<String>,
    /// The client type's name (`PetstoreClient`).
    pub client: Option<String>,
    /// Base URLs by name; `default` (else the first) is the one the builder starts with.
    pub base_urls: BTreeMap<String, String>,
    /// The names of `base_urls` in file order.
    pub base_url_order: Vec<String>,
}

/// A string and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The string.
    pub value: String,
    /// Where it is.
    pub at: At,
}

/// A bucket: limits enforced together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its name.
    pub name: String,
    /// Its limits.
    pub limits: Vec<Rate>,
    /// Requests of the bucket in flight at once.
    pub max_in_flight: Option<u32>,
    /// Where it is defined.
    pub at: At,
}

/// Which operations a group or pagination rule applies to: every field given must
/// hold; a list within a field holds when one of its items does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// `operationId` globs.
    pub operation: Vec<Named>,
    /// Tags.
    pub tag: Vec<Named>,
    /// HTTP methods, upper case.
    pub method: Vec<Named>,
    /// Path globs.
    pub path: Vec<Named>,
    /// Where the `match` mapping is.
    pub at: At,
}

/// A group: which buckets matching operations spend, their cost, new names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Which operations.
    pub matcher: Match,
    /// An exact operation id the group is narrowed to (for `rename`).
    pub operation: Option<Named>,
    /// Buckets spent together.
    pub buckets: Option<Vec<Named>>,
    /// Units spent per request.
    pub cost: Option<u32>,
    /// A new method name.
    pub rename: Option<Named>,
    /// A new resource handle.
    pub resource: Option<Named>,
    /// Where the group is.
    pub at: At,
}

/// Bucket overrides chosen by credential or base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    /// Its name.
    pub name: String,
    /// When it applies.
    pub when: ModeWhen,
    /// The buckets it changes; each name refers to a bucket of `buckets`.
    pub buckets: Vec<Bucket>,
    /// Where it is.
    pub at: At,
}

/// When a mode applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeWhen {
    /// The credential starts with this prefix.
    KeyPrefix(String),
    /// The base URL is this name of `service.base_urls`, or this URL.
    BaseUrl(Named),
}

/// A pagination rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaginationRule {
    /// Which operations.
    pub matcher: Match,
    /// How they page.
    pub scheme: PagingRule,
    /// Where the rule is.
    pub at: At,
}

/// A pagination scheme as written, names located for the checks against the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagingRule {
    /// `cursor: {param, items, has_more, next}`.
    Cursor {
        /// The request parameter.
        param: Named,
        /// The response field holding the items.
        items: Named,
        /// The response field saying there is more.
        has_more: Option<Named>,
        /// `last_item.FIELD` or a response field.
        next: Named,
    },
    /// `offset: {param, items}`.
    Offset {
        /// The request parameter.
        param: Named,
        /// The response field holding the items.
        items: Named,
    },
    /// `page: {param, items, first}`.
    Page {
        /// The request parameter.
        param: Named,
        /// The response field holding the items.
        items: Named,
        /// The first page's number (default 1).
        first: u64,
    },
    /// `link_header: true` or `link_header: {items}`.
    LinkHeader {
        /// The response field holding the items; `None` for a top-level array.
        items: Option<Named>,
    },
}

impl Annotations {
    /// Loads an annotations file.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] when the file cannot be read, [`Error::Parse`] with line and column
    /// for invalid YAML, [`Error::Annotations`] listing every problem found in the file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = read(path)?;
        Self::parse(path, &text)
    }

    /// Parses annotations from text; `path` is only used in errors.
    ///
    /// # Errors
    ///
    /// As [`Annotations::load`], minus reading.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let (annotations, problems) = Self::parse_lenient(path, text)?;
        if problems.is_empty() {
            Ok(annotations)
        } else {
            Err(Error::Annotations {
                file: path.to_path_buf(),
                problems,
            })
        }
    }

    /// Parses annotations, keeping what is usable and returning the problems found
    /// beside them, so that later checks can add theirs before anything is reported.
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] for invalid YAML only.
    pub fn parse_lenient(path: &Path, text: &str) -> Result<(Self, Vec<Problem>), Error> {
        let value: serde_yaml::Value = if text.trim().is_empty() {
            serde_yaml::Value::Null
        } else {
            serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e, "invalid annotations"))?
        };
        let (mut annotations, found) = read::read(&value);
        annotations.source = Some(Source {
            file: path.to_path_buf(),
            text: text.to_owned(),
        });
        let problems = annotations.problems(found);
        Ok((annotations, problems))
    }

    /// The file the annotations came from, when they came from one.
    pub fn file(&self) -> Option<&Path> {
        self.source.as_ref().map(|s| s.file.as_path())
    }

    /// Located, sorted problems from `(where, message)` pairs.
    pub fn problems(&self, found: Vec<(At, String)>) -> Vec<Problem> {
        let text = self.source.as_ref().map_or("", |s| s.text.as_str());
        let mut problems: Vec<Problem> = found
            .into_iter()
            .map(|(at, message)| {
                let (line, column) = locate(text, &at);
                Problem {
                    line,
                    column,
                    message,
                }
            })
            .collect();
        problems.sort();
        problems.dedup();
        problems
    }

    /// The bucket named `name`.
    pub fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.name == name)
    }
}

/// The closest of `candidates` to `wanted`, when close enough to be a likely typo.
pub fn suggest<'c>(wanted: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != wanted)
        .map(|c| (distance(&wanted_lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// `; did you mean "X"?` when a candidate is close, else nothing.
pub fn did_you_mean<'c>(wanted: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    suggest(wanted, candidates).map_or_else(String::new, |c| format!("; did you mean \"{c}\"?"))
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            let substitution = diagonal + usize::from(ca != *cb);
            row[j + 1] = substitution.min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_need_a_close_name() {
        let names = ["CreateCustomer", "ListCustomers"];
        assert_eq!(suggest("CreateCustomr", names), Some("CreateCustomer"));
        assert_eq!(suggest("createcustomer", names), Some("CreateCustomer"));
        assert_eq!(suggest("Refund", names), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
