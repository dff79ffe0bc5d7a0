//! Reading an annotations file's YAML tree into [`Annotations`], collecting every
//! problem with its path instead of stopping at the first.

use serde_yaml::Value;

use crate::annotations::{
    Annotations, At, Bucket, Group, Match, Mode, ModeWhen, Named, PaginationRule, PagingRule,
    ServiceAnnotations, did_you_mean,
};
use crate::ir::{Budget, Rate, ResetKind, Retry, Store, Tracking};

const TOP: &[&str] = &[
    "service",
    "buckets",
    "groups",
    "modes",
    "tracking",
    "retry",
    "pagination",
    "bulk",
    "store",
];
const METHODS: &[&str] = &[
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];
const RATE_FORMS: &str = "expected a form like \"100/s\", \"5000/h\" or \"10/2s\"";
const DURATION_FORMS: &str = "expected a form like \"250ms\", \"2s\", \"5min\" or \"1h\"";

/// Reads `root`; returns what is usable and every problem found.
pub(super) fn read(root: &Value) -> (Annotations, Vec<(At, String)>) {
    let mut reader = Reader::default();
    let mut out = Annotations::default();
    let top = At::default();
    if root.is_null() {
        return (out, reader.found);
    }
    for (key, value) in reader.mapping(root, &top, TOP) {
        let at = top.key(key);
        match key {
            "service" => out.service = reader.service(value, &at),
            "buckets" => out.buckets = reader.buckets(value, &at),
            "groups" => out.groups = reader.list(value, &at, Reader::group),
            "modes" => out.modes = reader.modes(value, &at),
            "tracking" => out.tracking = reader.tracking(value, &at),
            "retry" => out.retry = reader.retry(value, &at),
            "pagination" => out.pagination = reader.list(value, &at, Reader::pagination),
            "bulk" => out.bulk_max_concurrency = reader.bulk(value, &at),
            _ => out.store = reader.store(value, &at),
        }
    }
    (out, reader.found)
}

#[derive(Default)]
struct Reader {
    found: Vec<(At, String)>,
}

/// The place named in messages (`buckets.default.limits[1]`).
fn place(at: &At) -> String {
    if at.0.is_empty() {
        "the top level".into()
    } else {
        format!("`{at}`")
    }
}

impl Reader {
    fn fail(&mut self, at: At, message: impl Into<String>) {
        self.found.push((at, message.into()));
    }

    /// The entries of a mapping whose keys are among `keys`; others are reported.
    fn mapping<'v>(
        &mut self,
        value: &'v Value,
        at: &At,
        keys: &[&str],
    ) -> Vec<(&'v str, &'v Value)> {
        let Some(map) = self.any_mapping(value, at) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in map {
            if keys.contains(&key) {
                out.push((key, value));
            } else {
                let hint = did_you_mean(key, keys.iter().copied());
                let message = match at.0.is_empty() {
                    true => format!("unknown key \"{key}\" at the top level{hint}"),
                    false => format!("unknown key \"{key}\" in {}{hint}", place(at)),
                };
                self.fail(at.key_name(key), message);
            }
        }
        out
    }

    /// The entries of a mapping with any string keys.
    fn any_mapping<'v>(&mut self, value: &'v Value, at: &At) -> Option<Vec<(&'v str, &'v Value)>> {
        let Value::Mapping(map) = value else {
            self.fail(at.clone(), format!("{} must be a mapping", place(at)));
            return None;
        };
        let mut out = Vec::new();
        for (key, value) in map {
            match key.as_str() {
                Some(key) => out.push((key, value)),
                None => self.fail(at.clone(), format!("keys of {} must be strings", place(at))),
            }
        }
        Some(out)
    }

    fn list<T>(
        &mut self,
        value: &Value,
        at: &At,
        item: fn(&mut Self, &Value, &At) -> Option<T>,
    ) -> Vec<T> {
        let Value::Sequence(items) = value else {
            self.fail(at.clone(), format!("{} must be a list", place(at)));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, value) in items.iter().enumerate() {
            out.extend(item(self, value, &at.index(i)));
        }
        out
    }

    fn string(&mut self, value: &Value, at: &At) -> Option<String> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.fail(at.clone(), format!("{} must not be empty", place(at)));
                None
            }
            _ => {
                self.fail(at.clone(), format!("{} must be a string", place(at)));
                None
            }
        }
    }

    fn named(&mut self, value: &Value, at: &At) -> Option<Named> {
        let value = self.string(value, at)?;
        Some(Named {
            value,
            at: at.clone(),
        })
    }

    /// A string, or a list of strings.
    fn names(&mut self, value: &Value, at: &At) -> Vec<Named> {
        match value {
            Value::Sequence(items) => {
                let names: Vec<Named> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| self.named(v, &at.index(i)))
                    .collect();
                if items.is_empty() {
                    self.fail(at.clone(), format!("{} must not be empty", place(at)));
                }
                names
            }
            _ => self.named(value, at).into_iter().collect(),
        }
    }

    fn whole(&mut self, value: &Value, at: &At, min: u64, max: u64) -> Option<u64> {
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let shown = scalar_text(value);
                let message = if max == u64::from(u32::MAX) {
                    format!(
                        "{} must be a whole number of at least {min}, not {shown}",
                        place(at)
                    )
                } else {
                    format!(
                        "{} must be a whole number from {min} to {max}, not {shown}",
                        place(at)
                    )
                };
                self.fail(at.clone(), message);
                None
            }
        }
    }

    fn count(&mut self, value: &Value, at: &At) -> Option<u32> {
        let n = self.whole(value, at, 1, u64::from(u32::MAX))?;
        u32::try_from(n).ok()
    }

    fn duration(&mut self, value: &Value, at: &At) -> Option<u64> {
        let text = scalar_text(value);
        match parse_duration(&text) {
            Ok(nanos) => Some(nanos),
            Err(reason) => {
                let message = format!(
                    "invalid duration {text} in {}: {reason} ({DURATION_FORMS})",
                    place(at)
                );
                self.fail(at.clone(), message);
                None
            }
        }
    }

    fn rate(&mut self, value: &Value, at: &At) -> Option<Rate> {
        let (text_value, burst) = match value {
            Value::Mapping(_) => {
                let mut rate = None;
                let mut burst = Some(1);
                for (key, v) in self.mapping(value, at, &["rate", "burst"]) {
                    match key {
                        "rate" => rate = Some(v),
                        _ => burst = self.count(v, &at.key(key)),
                    }
                }
                let Some(rate) = rate else {
                    self.fail(at.clone(), format!("{} needs a `rate`", place(at)));
                    return None;
                };
                (rate, burst?)
            }
            _ => (value, 1),
        };
        let at = if matches!(value, Value::Mapping(_)) {
            at.key("rate")
        } else {
            at.clone()
        };
        let text = scalar_text(text_value);
        match parse_rate(&text) {
            Ok((count, period_nanos)) => Some(Rate {
                count,
                period_nanos,
                burst,
            }),
            Err(reason) => {
                let message = format!(
                    "invalid rate {text} in {}: {reason} ({RATE_FORMS})",
                    place(&at)
                );
                self.fail(at, message);
                None
            }
        }
    }

    fn header(&mut self, value: &Value, at: &At) -> Option<String> {
        let name = self.string(value, at)?;
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if valid {
            Some(name.to_ascii_lowercase())
        } else {
            self.fail(
                at.clone(),
                format!(
                    "header name \"{name}\" in {} is not a valid header name",
                    place(at)
                ),
            );
            None
        }
    }

    fn headers(&mut self, value: &Value, at: &At) -> Vec<String> {
        match value {
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.header(v, &at.index(i)))
                .collect(),
            _ => self.header(value, at).into_iter().collect(),
        }
    }

    fn identifier(&mut self, value: &Value, at: &At) -> Option<Named> {
        let named = self.named(value, at)?;
        let ok = named
            .value
            .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && named
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Some(named)
        } else {
            let message = format!(
                "\"{}\" in {} is not a snake_case name",
                named.value,
                place(at)
            );
            self.fail(at.clone(), message);
            None
        }
    }

    fn service(&mut self, value: &Value, at: &At) -> Option<ServiceAnnotations> {
        let mut out = ServiceAnnotations::default();
        for (key, value) in self.mapping(value, at, &["name", "crate", "client", "base_urls"]) {
            let at = at.key(key);
            match key {
                "name" => out.name = self.string(value, &at),
                "crate" => out.crate_name = self.string(value, &at),
                "client" => out.client = self.string(value, &at),
                _ => {
                    for (name, url) in self.any_mapping(value, &at).unwrap_or_default() {
                        if let Some(url) = self.string(url, &at.key(name)) {
                            out.base_urls.insert(name.to_owned(), url);
                            out.base_url_order.push(name.to_owned());
                        }
                    }
                }
            }
        }
        Some(out)
    }

    fn buckets(&mut self, value: &Value, at: &At) -> Vec<Bucket> {
        let entries = self.any_mapping(value, at).unwrap_or_default();
        entries
            .into_iter()
            .filter_map(|(name, value)| self.bucket(name, value, &at.key(name)))
            .collect()
    }

    fn bucket(&mut self, name: &str, value: &Value, at: &At) -> Option<Bucket> {
        let mut bucket = Bucket {
            name: name.to_owned(),
            limits: Vec::new(),
            max_in_flight: None,
            at: at.clone(),
        };
        for (key, value) in self.mapping(value, at, &["limits", "max_in_flight"]) {
            let at = at.key(key);
            match key {
                "limits" => {
                    bucket.limits = match value {
                        Value::Sequence(items) => items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| self.rate(v, &at.index(i)))
                            .collect(),
                        _ => self.rate(value, &at).into_iter().collect(),
                    }
                }
                _ => bucket.max_in_flight = self.count(value, &at),
            }
        }
        Some(bucket)
    }

    fn matcher(&mut self, value: &Value, at: &At) -> Match {
        let mut out = Match {
            at: at.clone(),
            ..Match::default()
        };
        let entries = self.mapping(value, at, &["operation", "tag", "method", "path"]);
        if entries.is_empty() && matches!(value, Value::Mapping(_)) {
            self.fail(
                at.clone(),
                format!(
                    "{} needs one of `operation`, `tag`, `method`, `path`",
                    place(at)
                ),
            );
        }
        for (key, value) in entries {
            let names = self.names(value, &at.key(key));
            match key {
                "operation" => out.operation = names,
                "tag" => out.tag = names,
                "path" => out.path = names,
                _ => out.method = self.methods(names),
            }
        }
        out
    }

    fn methods(&mut self, names: Vec<Named>) -> Vec<Named> {
        let mut out = Vec::new();
        for mut name in names {
            let upper = name.value.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                name.value = upper;
                out.push(name);
            } else {
                let hint = did_you_mean(&upper, METHODS.iter().copied());
                self.fail(
                    name.at.clone(),
                    format!("\"{}\" is not an HTTP method{hint}", name.value),
                );
            }
        }
        out
    }

    fn group(&mut self, value: &Value, at: &At) -> Option<Group> {
        let mut group = Group {
            matcher: Match {
                at: at.clone(),
                ..Match::default()
            },
            operation: None,
            buckets: None,
            cost: None,
            rename: None,
            resource: None,
            at: at.clone(),
        };
        let keys = [
            "match",
            "operation",
            "buckets",
            "cost",
            "rename",
            "resource",
        ];
        let entries = self.mapping(value, at, &keys);
        if matches!(value, Value::Mapping(_))
            && !entries
                .iter()
                .any(|(k, _)| *k == "match" || *k == "operation")
        {
            self.fail(
                at.clone(),
                format!("{} needs `match` or `operation`", place(at)),
            );
        }
        for (key, value) in entries {
            let at = at.key(key);
            match key {
                "match" => group.matcher = self.matcher(value, &at),
                "operation" => group.operation = self.named(value, &at),
                "buckets" => group.buckets = Some(self.names(value, &at)),
                "cost" => group.cost = self.count(value, &at),
                "rename" => group.rename = self.identifier(value, &at),
                _ => group.resource = self.identifier(value, &at),
            }
        }
        Some(group)
    }

    fn modes(&mut self, value: &Value, at: &At) -> Vec<Mode> {
        let entries = self.any_mapping(value, at).unwrap_or_default();
        entries
            .into_iter()
            .filter_map(|(name, value)| self.mode(name, value, &at.key(name)))
            .collect()
    }

    fn mode(&mut self, name: &str, value: &Value, at: &At) -> Option<Mode> {
        let mut when = None;
        let mut buckets = Vec::new();
        for (key, value) in self.mapping(value, at, &["when", "buckets"]) {
            let at = at.key(key);
            if key == "buckets" {
                for (bucket, value) in self.any_mapping(value, &at).unwrap_or_default() {
                    buckets.extend(self.bucket(bucket, value, &at.key(bucket)));
                }
                continue;
            }
            let entries = self.mapping(value, &at, &["key_prefix", "base_url"]);
            if entries.len() != 1 {
                if matches!(value, Value::Mapping(_)) {
                    let message = format!(
                        "{} needs exactly one of `key_prefix`, `base_url`",
                        place(&at)
                    );
                    self.fail(at.clone(), message);
                }
                continue;
            }
            for (key, value) in entries {
                let at = at.key(key);
                when = match key {
                    "key_prefix" => self.string(value, &at).map(ModeWhen::KeyPrefix),
                    _ => self.named(value, &at).map(ModeWhen::BaseUrl),
                };
            }
        }
        let Some(when) = when else {
            if !self.found.iter().any(|(a, _)| a.0.starts_with(&at.0)) {
                self.fail(at.clone(), format!("{} needs `when`", place(at)));
            }
            return None;
        };
        Some(Mode {
            name: name.to_owned(),
            when,
            buckets,
            at: at.clone(),
        })
    }

    fn tracking(&mut self, value: &Value, at: &At) -> Option<Tracking> {
        let mut scheme = "all".to_owned();
        let mut reset_kind = ResetKind::Auto;
        let mut overrides = Vec::new();
        for (key, value) in self.mapping(value, at, &["scheme", "reset", "headers"]) {
            let at = at.key(key);
            match key {
                "scheme" => {
                    const SCHEMES: &[&str] =
                        &["x-ratelimit", "ietf", "ietf-draft", "none", "custom"];
                    let Some(name) = self.string(value, &at) else {
                        continue;
                    };
                    if SCHEMES.contains(&name.as_str()) {
                        scheme = name;
                    } else {
                        let hint = did_you_mean(&name, SCHEMES.iter().copied());
                        self.fail(at, format!("unknown tracking scheme \"{name}\"{hint}"));
                    }
                }
                "reset" => {
                    let Some(name) = self.string(value, &at) else {
                        continue;
                    };
                    reset_kind = match name.as_str() {
                        "auto" => ResetKind::Auto,
                        "epoch" => ResetKind::Epoch,
                        "delay" => ResetKind::Delay,
                        "epoch-ms" => ResetKind::EpochMs,
                        _ => {
                            let kinds = ["auto", "epoch", "delay", "epoch-ms"];
                            let hint = did_you_mean(&name, kinds);
                            self.fail(at, format!("unknown reset kind \"{name}\"{hint}"));
                            continue;
                        }
                    };
                }
                _ => {
                    let fields = [
                        "retry_after",
                        "retry_after_ms",
                        "limit",
                        "remaining",
                        "reset",
                        "used",
                        "resource",
                    ];
                    for (field, value) in self.mapping(value, &at, &fields) {
                        overrides.push((field, self.headers(value, &at.key(field))));
                    }
                }
            }
        }
        let mut tracking = scheme_headers(&scheme);
        tracking.reset_kind = reset_kind;
        for (field, names) in overrides {
            let slot = match field {
                "retry_after" => &mut tracking.retry_after,
                "retry_after_ms" => &mut tracking.retry_after_ms,
                "limit" => &mut tracking.limit,
                "remaining" => &mut tracking.remaining,
                "reset" => &mut tracking.reset,
                "used" => &mut tracking.used,
                _ => &mut tracking.resource,
            };
            *slot = names;
        }
        Some(tracking)
    }

    fn retry(&mut self, value: &Value, at: &At) -> Option<Retry> {
        let mut retry = Retry::default();
        let keys = [
            "statuses",
            "attempts",
            "backoff",
            "max_retry_after",
            "budget",
            "idempotency",
            "hint_header",
        ];
        for (key, value) in self.mapping(value, at, &keys) {
            let at = at.key(key);
            match key {
                "statuses" => retry.statuses = Some(self.statuses(value, &at)),
                "attempts" => retry.attempts = self.count(value, &at),
                "backoff" => retry.backoff = self.backoff(value, &at),
                "max_retry_after" => retry.max_retry_after = self.duration(value, &at),
                "budget" => retry.budget = self.budget(value, &at),
                "idempotency" => {
                    for (key, value) in self.mapping(value, &at, &["header", "methods"]) {
                        let at = at.key(key);
                        if key == "header" {
                            retry.idempotency_header = self.header(value, &at);
                        } else {
                            let names = self.names(value, &at);
                            let methods = self.methods(names);
                            retry.idempotent_methods =
                                Some(methods.into_iter().map(|n| n.value).collect());
                        }
                    }
                }
                _ => retry.hint_header = self.header(value, &at),
            }
        }
        Some(retry)
    }

    fn statuses(&mut self, value: &Value, at: &At) -> Vec<u16> {
        let Value::Sequence(items) = value else {
            self.fail(at.clone(), format!("{} must be a list", place(at)));
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| self.whole(v, &at.index(i), 100, 599))
            .filter_map(|n| u16::try_from(n).ok())
            .collect()
    }

    fn backoff(&mut self, value: &Value, at: &At) -> Option<(u64, u64)> {
        let mut base = None;
        let mut max = None;
        for (key, value) in self.mapping(value, at, &["base", "max"]) {
            let duration = self.duration(value, &at.key(key));
            if key == "base" {
                base = duration
            } else {
                max = duration
            }
        }
        match (base, max) {
            (Some(base), Some(max)) if base <= max => Some((base, max)),
            (Some(_), Some(_)) => {
                self.fail(
                    at.key("base"),
                    format!("backoff base in {} is above its max", place(at)),
                );
                None
            }
            _ => {
                if !self.found.iter().any(|(a, _)| a.0.starts_with(&at.0)) {
                    self.fail(at.clone(), format!("{} needs `base` and `max`", place(at)));
                }
                None
            }
        }
    }

    fn budget(&mut self, value: &Value, at: &At) -> Option<Option<Budget>> {
        if matches!(value, Value::Bool(false)) || value.as_str() == Some("off") {
            return Some(None);
        }
        let mut budget = Budget {
            per_mille: 200,
            min_per_second: 10,
        };
        for (key, value) in self.mapping(value, at, &["ratio", "min_per_second"]) {
            let at = at.key(key);
            if key == "min_per_second" {
                budget.min_per_second =
                    u32::try_from(self.whole(value, &at, 0, u64::from(u32::MAX))?).ok()?;
                continue;
            }
            match value.as_f64() {
                Some(ratio) if (0.0..=1.0).contains(&ratio) => {
                    budget.per_mille = (ratio * 1000.0).round() as u32;
                }
                _ => {
                    let text = scalar_text(value);
                    self.fail(
                        at.clone(),
                        format!("{} must be a number from 0 to 1, not {text}", place(&at)),
                    );
                    return None;
                }
            }
        }
        if budget.per_mille == 0 && budget.min_per_second == 0 {
            self.fail(
                at.clone(),
                format!(
                    "{} allows no retries at all; write `budget: off` to turn it off",
                    place(at)
                ),
            );
            return None;
        }
        Some(Some(budget))
    }

    fn pagination(&mut self, value: &Value, at: &At) -> Option<PaginationRule> {
        let mut matcher = None;
        let mut schemes = Vec::new();
        let keys = ["match", "cursor", "offset", "page", "link_header"];
        for (key, value) in self.mapping(value, at, &keys) {
            let at = at.key(key);
            match key {
                "match" => matcher = Some(self.matcher(value, &at)),
                "link_header" => match value {
                    Value::Bool(true) => schemes.push(PagingRule::LinkHeader { items: None }),
                    _ => {
                        let mut items = None;
                        for (_, v) in self.mapping(value, &at, &["items"]) {
                            items = self.named(v, &at.key("items"));
                        }
                        schemes.push(PagingRule::LinkHeader { items });
                    }
                },
                _ => schemes.extend(self.scheme(key, value, &at)),
            }
        }
        let Some(matcher) = matcher else {
            self.fail(at.clone(), format!("{} needs `match`", place(at)));
            return None;
        };
        if schemes.len() != 1 {
            if schemes.len() > 1 || !self.found.iter().any(|(a, _)| a.0.starts_with(&at.0)) {
                self.fail(
                    at.clone(),
                    format!(
                        "{} needs exactly one of `cursor`, `offset`, `page`, `link_header`",
                        place(at)
                    ),
                );
            }
            return None;
        }
        Some(PaginationRule {
            matcher,
            scheme: schemes.remove(0),
            at: at.clone(),
        })
    }

    fn scheme(&mut self, kind: &str, value: &Value, at: &At) -> Option<PagingRule> {
        let keys: &[&str] = match kind {
            "cursor" => &["param", "items", "has_more", "next"],
            "offset" => &["param", "items"],
            _ => &["param", "items", "first"],
        };
        let mut fields = std::collections::BTreeMap::new();
        let mut first = 1;
        for (key, value) in self.mapping(value, at, keys) {
            let at = at.key(key);
            if key == "first" {
                first = self.whole(value, &at, 0, u64::MAX)?;
            } else {
                fields.insert(key, self.named(value, &at)?);
            }
        }
        let required: &[&str] = if kind == "cursor" {
            &["param", "items", "next"]
        } else {
            &["param", "items"]
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|k| !fields.contains_key(k))
            .collect();
        if !missing.is_empty() {
            let missing: Vec<String> = missing.iter().map(|k| format!("`{k}`")).collect();
            self.fail(
                at.clone(),
                format!("{} needs {}", place(at), missing.join(" and ")),
            );
            return None;
        }
        let mut take = |k: &str| fields.remove(k);
        let param = take("param")?;
        let items = take("items")?;
        Some(match kind {
            "cursor" => PagingRule::Cursor {
                param,
                items,
                has_more: take("has_more"),
                next: take("next")?,
            },
            "offset" => PagingRule::Offset { param, items },
            _ => PagingRule::Page {
                param,
                items,
                first,
            },
        })
    }

    fn bulk(&mut self, value: &Value, at: &At) -> Option<u32> {
        let mut out = None;
        for (key, value) in self.mapping(value, at, &["max_concurrency"]) {
            out = self.count(value, &at.key(key));
        }
        out
    }

    fn store(&mut self, value: &Value, at: &At) -> Option<Store> {
        let mut shared = false;
        let mut url_env = None;
        let mut local_share = Some(500);
        for (key, value) in self.mapping(value, at, &["shared", "url_env", "on_failure"]) {
            let at = at.key(key);
            match key {
                "shared" => match self.string(value, &at) {
                    Some(kind) if kind == "redis" => shared = true,
                    Some(kind) => self.fail(
                        at,
                        format!("unknown shared store \"{kind}\"; only \"redis\" is supported"),
                    ),
                    None => {}
                },
                "url_env" => {
                    let name = self.string(value, &at);
                    let valid =
                        |n: &String| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    match name {
                        Some(name) if valid(&name) => url_env = Some(name),
                        Some(name) => {
                            let message = format!(
                                "\"{name}\" in {} is not an environment variable name",
                                place(&at)
                            );
                            self.fail(at, message);
                        }
                        None => {}
                    }
                }
                _ => local_share = self.on_failure(value, &at)?,
            }
        }
        if !shared {
            if !self.found.iter().any(|(a, _)| a.0.starts_with(&at.0)) {
                self.fail(at.clone(), format!("{} needs `shared: redis`", place(at)));
            }
            return None;
        }
        let Some(url_env) = url_env else {
            if !self.found.iter().any(|(a, _)| a.0.starts_with(&at.0)) {
                self.fail(at.clone(), format!("{} needs `url_env`", place(at)));
            }
            return None;
        };
        Some(Store {
            url_env,
            local_share_per_mille: local_share,
        })
    }

    fn on_failure(&mut self, value: &Value, at: &At) -> Option<Option<u32>> {
        if value.as_str() == Some("fail") {
            return Some(None);
        }
        if !matches!(value, Value::Mapping(_)) {
            let text = scalar_text(value);
            self.fail(
                at.clone(),
                format!(
                    "{} must be `fail` or `{{local_share: SHARE}}`, not {text}",
                    place(at)
                ),
            );
            return None;
        }
        let mut share = Some(500);
        for (key, value) in self.mapping(value, at, &["local_share"]) {
            let at = at.key(key);
            share = match value.as_f64() {
                Some(s) if s > 0.0 && s <= 1.0 => Some((s * 1000.0).round().max(1.0) as u32),
                _ => {
                    let text = scalar_text(value);
                    self.fail(
                        at.clone(),
                        format!(
                            "{} must be a number above 0 and at most 1, not {text}",
                            place(&at)
                        ),
                    );
                    return None;
                }
            };
        }
        Some(share)
    }
}

/// The header lists of a tracking scheme; `all` is the runtime's default.
fn scheme_headers(scheme: &str) -> Tracking {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut tracking = Tracking {
        retry_after: names(&["retry-after"]),
        retry_after_ms: names(&["retry-after-ms", "x-ms-retry-after-ms"]),
        limit: names(&["x-ratelimit-limit", "ratelimit-limit"]),
        remaining: names(&["x-ratelimit-remaining", "ratelimit-remaining"]),
        reset: names(&["x-ratelimit-reset", "ratelimit-reset"]),
        used: names(&["x-ratelimit-used"]),
        resource: names(&["x-ratelimit-resource"]),
        ietf: true,
        reset_kind: ResetKind::Auto,
    };
    let only = |tracking: &mut Tracking, prefix: Option<&str>| {
        for list in [
            &mut tracking.limit,
            &mut tracking.remaining,
            &mut tracking.reset,
            &mut tracking.used,
            &mut tracking.resource,
        ] {
            list.retain(|n| prefix.is_some_and(|p| n.starts_with(p)));
        }
    };
    match scheme {
        "x-ratelimit" => {
            only(&mut tracking, Some("x-ratelimit-"));
            tracking.ietf = false;
        }
        "ietf-draft" => {
            only(&mut tracking, Some("ratelimit-"));
            tracking.ietf = false;
        }
        "ietf" => only(&mut tracking, None),
        "none" | "custom" => {
            only(&mut tracking, None);
            tracking.ietf = false;
        }
        _ => {}
    }
    tracking
}

/// A scalar as written, quoted, for messages.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "nothing".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// Nanoseconds per unit, for rates and durations.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ms" => 1_000_000,
        "s" | "sec" | "second" => 1_000_000_000,
        "m" | "min" | "minute" => 60_000_000_000,
        "h" | "hour" => 3_600_000_000_000,
        "d" | "day" => 86_400_000_000_000,
        _ => return None,
    })
}

/// `250ms`, `2s`, `5min`, `1h` to nanoseconds.
fn parse_duration(text: &str) -> Result<u64, &'static str> {
    let text = text.trim_matches('"').trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    if amount.is_empty() {
        return Err("no amount");
    }
    if unit.trim().is_empty() {
        return Err("no unit");
    }
    let amount: u64 = amount.parse().map_err(|_| "amount too large")?;
    let nanos = unit_nanos(unit.trim()).ok_or("unknown unit")?;
    amount.checked_mul(nanos).ok_or("too long")
}

/// `100/s`, `5000/h`, `10/2s` to a count and a period in nanoseconds.
fn parse_rate(text: &str) -> Result<(u32, u64), &'static str> {
    let text = text.trim_matches('"');
    let (count, period) = text.split_once('/').ok_or("no `/`")?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| "count is not a whole number")?;
    if count == 0 {
        return Err("count is 0");
    }
    let period = period.trim();
    let split = period
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(period.len());
    let (amount, unit) = period.split_at(split);
    let amount: u64 = if amount.is_empty() {
        1
    } else {
        amount
            .parse()
            .map_err(|_| "period amount is not a number")?
    };
    if amount == 0 {
        return Err("period is 0");
    }
    let nanos = unit_nanos(unit.trim()).ok_or("unknown period unit")?;
    let period = amount.checked_mul(nanos).ok_or("period too long")?;
    if period < u64::from(count) {
        return Err("faster than one per nanosecond");
    }
    Ok((count, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("100/s"), Ok((100, 1_000_000_000)));
        assert_eq!(parse_rate("10/2s"), Ok((10, 2_000_000_000)));
        assert_eq!(parse_rate("5000/h"), Ok((5000, 3_600_000_000_000)));
        assert_eq!(parse_rate("100/fortnight"), Err("unknown period unit"));
        assert_eq!(parse_rate("0/s"), Err("count is 0"));
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("5min"), Ok(300_000_000_000));
        assert_eq!(parse_duration("10"), Err("no unit"));
    }
}
