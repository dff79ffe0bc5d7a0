//! `polvo-gen init`: a starter annotations file for a spec that has none.
//!
//! The starter is valid as written, so `generate` accepts it at once, and it says what
//! to fill in: one `default` bucket with a placeholder limit, one group per tag (or
//! per resource, when operations have no tags) pointing at that bucket, and commented
//! sections for tracking, retries, pagination and bulk runs. Strings are written as
//! JSON strings, which YAML reads as they are, so no tag name can break the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::ir::Api;

/// The limit every starter bucket gets until the documented one is filled in.
const PLACEHOLDER_LIMIT: &str = "10/s";

/// The text of a starter `polvo.yaml` for `api`, read from `spec_label`.
pub(crate) fn starter(api: &Api, spec_label: &str) -> String {
    let mut out = String::new();
    let service = &api.service;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""));

    let _ = writeln!(
        out,
        "# polvo annotations for {} ({spec_label}), started by `polvo-gen init`.",
        api.title
    );
    out.push_str(
        "#\n\
         # Fill in the limits the service documents and name the page you read them on,\n\
         # then generate the client with this file as --annotations. Every key is\n\
         # described in docs/annotations.md; unknown keys are errors.\n\
         #\n\
         # Limits: <the service's rate-limit documentation> (read <date>)\n\n",
    );

    out.push_str("service:\n");
    let _ = writeln!(out, "  name: {}", q(&service.name));
    let _ = writeln!(out, "  crate: {}", q(&service.crate_name));
    let _ = writeln!(out, "  client: {}", q(&service.client));
    match &service.base_url {
        Some(url) => {
            let _ = writeln!(out, "  base_urls:\n    default: {}", q(url));
        }
        None => out.push_str("  # base_urls: {live: \"https://api.example.com\"}\n"),
    }

    out.push_str("\nbuckets:\n  default:\n");
    let _ = writeln!(
        out,
        "    limits: [{}]   # FIXME: the documented limit, such as \"100/s\" or \
         {{rate: \"5000/h\", burst: 100}}",
        q(PLACEHOLDER_LIMIT)
    );
    out.push_str("    # max_in_flight: 10           # a cap on concurrent requests, if any\n");

    let groups = groups(api);
    if !groups.is_empty() {
        out.push_str(
            "\n# First match wins. Give a group its own bucket (defined above) when the\n\
             # service limits it apart, and a cost when one call counts as several.\n\
             groups:\n",
        );
    }
    for (key, count) in &groups {
        let plural = if *count == 1 { "" } else { "s" };
        let selector = match key {
            Key::Tag(tag) => format!("{{tag: {}}}", q(tag)),
            Key::Path(prefix) => format!("{{path: {}}}", q(&format!("{prefix}*"))),
        };
        let _ = writeln!(out, "  - match: {selector}   # {count} operation{plural}");
        out.push_str("    buckets: [default]\n    cost: 1\n");
    }

    out.push_str(
        "\n# tracking:                      # the server's rate-limit headers\n\
         #   scheme: x-ratelimit           # or ietf, or custom names\n\
         #   reset: epoch                  # or delay\n\
         # retry:\n\
         #   statuses: [429, 503]\n\
         #   attempts: 3\n\
         #   idempotency: {header: Idempotency-Key}\n\
         # pagination:\n\
         #   - match: {operation: \"list*\"}\n\
         #     cursor: {param: starting_after, items: data, has_more: has_more,\n\
         #              next: last_item.id}\n\
         # bulk:\n\
         #   max_concurrency: 16\n",
    );
    out
}

/// How a starter group selects its operations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Tag(String),
    /// A path prefix (`/pets`), for operations without tags.
    Path(String),
}

/// Starter groups and how many operations each selects: by first tag, else by the
/// first path segment.
fn groups(api: &Api) -> BTreeMap<Key, usize> {
    let mut groups = BTreeMap::new();
    for op in &api.operations {
        let key = match op.tags.first() {
            Some(tag) => Key::Tag(tag.clone()),
            None => {
                let segment = op.path.trim_start_matches('/').split('/').next();
                Key::Path(format!("/{}", segment.unwrap_or_default()))
            }
        };
        *groups.entry(key).or_insert(0) += 1;
    }
    groups
}
