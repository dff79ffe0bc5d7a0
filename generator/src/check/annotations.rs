//! The annotations file against the spec: operation ids, tags, paths, buckets, base
//! URLs, parameters and response fields it names must exist, and what it asks for must
//! be possible. Every problem is returned, located in the annotations file.

use std::collections::BTreeSet;

use crate::annotations::{
    Annotations, At, Group, Match, ModeWhen, Named, PagingRule, did_you_mean,
};
use crate::error::Problem;
use crate::ir::{Api, Operation, ParamLocation};
use crate::lower::policy::{glob_match, is_glob, matches, struct_fields, success_json};

/// Every problem of `annotations` against `api`, located and sorted.
pub fn annotations(api: &Api, annotations: &Annotations) -> Vec<Problem> {
    let mut check = Check {
        api,
        annotations,
        found: Vec::new(),
    };
    for group in &annotations.groups {
        check.group(group);
    }
    check.modes();
    for rule in &annotations.pagination {
        if check.matcher(&rule.matcher, None) {
            let ops = check.selected(&rule.matcher, None);
            if ops.is_empty() {
                check.fail(&rule.at, "pagination rule matches no operation".into());
            }
            for op in ops {
                check.paging(&rule.scheme, op);
            }
        }
    }
    annotations.problems(check.found)
}

struct Check<'a> {
    api: &'a Api,
    annotations: &'a Annotations,
    found: Vec<(At, String)>,
}

impl<'a> Check<'a> {
    fn fail(&mut self, at: &At, message: String) {
        self.found.push((at.clone(), message));
    }

    fn selected(&self, matcher: &Match, only: Option<&Named>) -> Vec<&'a Operation> {
        self.api
            .operations
            .iter()
            .filter(|op| matches(matcher, only, op))
            .collect()
    }

    /// Checks each name of `matcher` on its own; whether all of them exist.
    fn matcher(&mut self, matcher: &Match, only: Option<&Named>) -> bool {
        let before = self.found.len();
        let ops = &self.api.operations;
        let ids: Vec<&str> = ops.iter().map(|o| o.id.as_str()).collect();
        let tags: BTreeSet<&str> = ops
            .iter()
            .flat_map(|o| o.tags.iter().map(String::as_str))
            .collect();
        let paths: BTreeSet<&str> = ops.iter().map(|o| o.path.as_str()).collect();
        for name in matcher.operation.iter().chain(only) {
            self.exists("operation", name, &ids);
        }
        for name in &matcher.tag {
            if !tags.contains(name.value.as_str()) {
                let hint = did_you_mean(&name.value, tags.iter().copied());
                self.fail(&name.at, format!("tag \"{}\" not found{hint}", name.value));
            }
        }
        let paths: Vec<&str> = paths.into_iter().collect();
        for name in &matcher.path {
            self.exists("path", name, &paths);
        }
        for name in &matcher.method {
            if !ops.iter().any(|o| o.method == name.value) {
                self.fail(&name.at, format!("no operation uses method {}", name.value));
            }
        }
        self.found.len() == before
    }

    /// An exact name must be one of `known`; a glob must match one of them.
    fn exists(&mut self, kind: &str, name: &Named, known: &[&str]) {
        if is_glob(&name.value) {
            if !known.iter().any(|k| glob_match(&name.value, k)) {
                let message = format!("{kind} glob \"{}\" matches no {kind}", name.value);
                self.fail(&name.at, message);
            }
        } else if !known.contains(&name.value.as_str()) {
            let hint = did_you_mean(&name.value, known.iter().copied());
            self.fail(
                &name.at,
                format!("{kind} \"{}\" not found{hint}", name.value),
            );
        }
    }

    fn bucket_exists(&mut self, name: &str, at: &At) {
        let defined = self.annotations.buckets.iter().map(|b| b.name.as_str());
        let known: Vec<&str> = defined.chain(["default"]).collect();
        if !known.contains(&name) {
            let hint = did_you_mean(name, known.iter().copied());
            self.fail(at, format!("bucket \"{name}\" is not defined{hint}"));
        }
    }

    fn group(&mut self, group: &Group) {
        for name in group.buckets.iter().flatten() {
            self.bucket_exists(&name.value, &name.at);
        }
        if !self.matcher(&group.matcher, group.operation.as_ref()) {
            return;
        }
        let ops = self.selected(&group.matcher, group.operation.as_ref());
        if ops.is_empty() {
            self.fail(&group.at, "group matches no operation".into());
            return;
        }
        if let Some(rename) = &group.rename {
            self.rename(rename, &ops);
        }
        if let Some(cost) = group.cost {
            self.cost(group, cost);
        }
    }

    fn rename(&mut self, rename: &Named, ops: &[&Operation]) {
        if let [op] = ops {
            let natural = |other: &Operation| {
                crate::lower::strip_group(&crate::naming::snake(&other.id), &other.group)
            };
            let taken_by = self.api.operations.iter().find(|other| {
                other.id != op.id
                    && other.group == op.group
                    && (other.name == rename.value || natural(other) == rename.value)
            });
            if let Some(other) = taken_by {
                let message = format!(
                    "method name \"{}\" is already taken in resource \"{}\" by operation \"{}\"",
                    rename.value, op.group, other.id
                );
                self.fail(&rename.at, message);
            }
            return;
        }
        let ids: Vec<&str> = ops.iter().take(3).map(|o| o.id.as_str()).collect();
        let more = if ops.len() > 3 { ", ..." } else { "" };
        let message = format!(
            "rename needs a group that selects one operation; this one selects {} ({}{more})",
            ops.len(),
            ids.join(", ")
        );
        self.fail(&rename.at, message);
    }

    /// A cost above a limit's burst could never be sent.
    fn cost(&mut self, group: &Group, cost: u32) {
        let default = [Named {
            value: "default".into(),
            at: group.at.clone(),
        }];
        let names = group.buckets.as_deref().unwrap_or(&default);
        let modes = self.annotations.modes.iter();
        let overrides = modes.flat_map(|m| m.buckets.iter().map(move |b| (Some(&m.name), b)));
        let buckets = self.annotations.buckets.iter().map(|b| (None, b));
        for (mode, bucket) in buckets.chain(overrides) {
            if !names.iter().any(|n| n.value == bucket.name) {
                continue;
            }
            if let Some(limit) = bucket.limits.iter().find(|l| l.burst < cost) {
                let mode = mode.map_or_else(String::new, |m| format!(" in mode \"{m}\""));
                let message = format!(
                    "cost {cost} is above the burst of {} of bucket \"{}\"{mode}; raise the \
                     burst or lower the cost",
                    limit.burst, bucket.name
                );
                self.fail(&group.at.key("cost"), message);
            }
        }
    }

    fn modes(&mut self) {
        let service = self.annotations.service.clone().unwrap_or_default();
        for mode in &self.annotations.modes {
            if let ModeWhen::BaseUrl(name) = &mode.when
                && !name.value.contains("://")
                && !service.base_urls.contains_key(&name.value)
            {
                let known = service.base_url_order.iter().map(String::as_str);
                let hint = did_you_mean(&name.value, known);
                let message = format!(
                    "base URL \"{}\" not found in service.base_urls{hint}",
                    name.value
                );
                self.fail(&name.at, message);
            }
            for bucket in &mode.buckets {
                let at = mode.at.key("buckets").key_name(&bucket.name);
                self.bucket_exists(&bucket.name, &at);
            }
        }
    }

    fn paging(&mut self, rule: &PagingRule, op: &Operation) {
        let (param, items) = match rule {
            PagingRule::Cursor { param, items, .. }
            | PagingRule::Offset { param, items }
            | PagingRule::Page { param, items, .. } => (Some(param), Some(items)),
            PagingRule::LinkHeader { items } => (None, items.as_ref()),
        };
        if let Some(param) = param {
            let query: Vec<&str> = op
                .params
                .iter()
                .filter(|p| p.location == ParamLocation::Query)
                .map(|p| p.name.as_str())
                .collect();
            if !query.contains(&param.value.as_str()) {
                let hint = did_you_mean(&param.value, query.iter().copied());
                let message = format!(
                    "query parameter \"{}\" not found in operation \"{}\"{hint}",
                    param.value, op.id
                );
                self.fail(&param.at, message);
            }
        }
        let Some(body) = success_json(op) else {
            let message = format!(
                "operation \"{}\" has no JSON response to page through",
                op.id
            );
            self.fail(&self.rule_at(rule), message);
            return;
        };
        let Some(fields) = struct_fields(self.api, body) else {
            return;
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let response_field = |check: &mut Self, name: &Named| {
            if !names.contains(&name.value.as_str()) {
                let hint = did_you_mean(&name.value, names.iter().copied());
                let message = format!(
                    "field \"{}\" not found in the response of operation \"{}\"{hint}",
                    name.value, op.id
                );
                check.fail(&name.at, message);
            }
        };
        if let Some(items) = items {
            response_field(self, items);
        }
        if let PagingRule::Cursor { has_more, next, .. } = rule {
            if let Some(has_more) = has_more {
                response_field(self, has_more);
            }
            if !next.value.starts_with("last_item.") {
                response_field(self, next);
            }
        }
    }

    fn rule_at(&self, rule: &PagingRule) -> At {
        match rule {
            PagingRule::Cursor { param, .. }
            | PagingRule::Offset { param, .. }
            | PagingRule::Page { param, .. } => param.at.clone(),
            PagingRule::LinkHeader { items } => {
                items.as_ref().map(|n| n.at.clone()).unwrap_or_default()
            }
        }
    }
}
