//! The annotations' policy applied to lowered operations: which group places and
//! charges each operation, which pagination rule pages it, and the plain-data
//! [`Policy`] the client embeds.
//!
//! Nothing is checked here: a name that matches nothing simply matches nothing, and
//! [`crate::check::annotations`] reports it with its line and column.

use std::collections::BTreeMap;

use crate::annotations::{Annotations, Group, Match, ModeWhen, Named, PagingRule};
use crate::diagnostic::Diagnostic;
use crate::ir::{
    Api, Bucket, CursorFrom, Encoding, Field, Mode, Operation, OperationCost, Paging, PagingScheme,
    Policy, TypeKind, TypeRef,
};
use crate::lower::operations::Placement;
use crate::naming::{Namer, bare};

/// Whether `op` is selected by `matcher` (every field given holds) and, for a group
/// narrowed with `operation`, is that operation.
pub(crate) fn matches(matcher: &Match, only: Option<&Named>, op: &Operation) -> bool {
    let any = |names: &[Named], test: &dyn Fn(&str) -> bool| {
        names.is_empty() || names.iter().any(|n| test(&n.value))
    };
    only.is_none_or(|n| n.value == op.id)
        && any(&matcher.operation, &|glob| glob_match(glob, &op.id))
        && any(&matcher.tag, &|tag| op.tags.iter().any(|t| t == tag))
        && any(&matcher.method, &|method| method == op.method)
        && any(&matcher.path, &|glob| glob_match(glob, &op.path))
}

/// Whether `text` matches `glob`, where `*` stands for any run of characters (`/`
/// included) and `?` for one character.
pub(crate) fn glob_match(glob: &str, text: &str) -> bool {
    let glob: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut g, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some('*') => {
                resume = Some((g, t));
                g += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match resume {
                Some((star, at)) => {
                    g = star + 1;
                    t = at + 1;
                    resume = Some((star, at + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

/// Whether a name is a glob rather than an exact name.
pub(crate) fn is_glob(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Where the first group that says so puts `op`.
pub(crate) fn placement(annotations: &Annotations, op: &Operation) -> Placement {
    let matching = || {
        annotations
            .groups
            .iter()
            .filter(|g| matches(&g.matcher, g.operation.as_ref(), op))
    };
    let first = |field: fn(&Group) -> Option<&Named>| {
        matching().find_map(|g| field(g)).map(|n| n.value.clone())
    };
    Placement {
        group: first(|g| g.resource.as_ref()),
        name: first(|g| g.rename.as_ref()),
    }
}

/// The policy of `api`'s operations, and each operation's paging.
pub(crate) fn apply(api: &mut Api, annotations: &Annotations) -> Vec<Diagnostic> {
    let mut policy = Policy {
        buckets: sorted_buckets(&annotations.buckets),
        tracking: annotations.tracking.clone(),
        retry: annotations.retry.clone(),
        bulk_max_concurrency: annotations.bulk_max_concurrency,
        store: annotations.store.clone(),
        ..Policy::default()
    };
    for op in &api.operations {
        let group = annotations
            .groups
            .iter()
            .filter(|g| g.buckets.is_some() || g.cost.is_some())
            .find(|g| matches(&g.matcher, g.operation.as_ref(), op));
        if let Some(group) = group {
            let buckets = match &group.buckets {
                Some(names) => names.iter().map(|n| n.value.clone()).collect(),
                None => vec!["default".to_owned()],
            };
            policy.operations.push(OperationCost {
                id: op.id.clone(),
                buckets,
                cost: group.cost.unwrap_or(1),
            });
        }
    }
    policy.operations.sort_by(|a, b| a.id.cmp(&b.id));
    policy.modes = annotations
        .modes
        .iter()
        .map(|mode| Mode {
            name: mode.name.clone(),
            when: match &mode.when {
                ModeWhen::KeyPrefix(prefix) => crate::ir::ModeWhen::KeyPrefix(prefix.clone()),
                ModeWhen::BaseUrl(name) => {
                    crate::ir::ModeWhen::BaseUrl(base_url(annotations, name))
                }
            },
            buckets: sorted_buckets(&mode.buckets),
        })
        .collect();
    api.policy = policy;
    paging(api, annotations)
}

/// A mode's base URL: a name of `service.base_urls`, or the URL itself.
fn base_url(annotations: &Annotations, name: &Named) -> String {
    annotations
        .service
        .as_ref()
        .and_then(|s| s.base_urls.get(&name.value))
        .unwrap_or(&name.value)
        .clone()
}

fn sorted_buckets(buckets: &[crate::annotations::Bucket]) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = buckets
        .iter()
        .map(|b| Bucket {
            name: b.name.clone(),
            limits: b.limits.clone(),
            max_in_flight: b.max_in_flight,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Sets each paged operation's [`Paging`]; warns where the item type is unknown.
fn paging(api: &mut Api, annotations: &Annotations) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut taken: BTreeMap<String, Namer> = BTreeMap::new();
    for op in &api.operations {
        let namer = taken
            .entry(op.group.clone())
            .or_insert_with(|| Namer::with_taken(["new"]));
        namer.unique(&op.name);
        for body in &op.bodies {
            namer.unique(&body.method);
        }
    }
    let mut found = Vec::new();
    for (index, op) in api.operations.iter().enumerate() {
        let Some(rule) = annotations
            .pagination
            .iter()
            .find(|r| matches(&r.matcher, None, op))
        else {
            continue;
        };
        let scheme = scheme(&rule.scheme);
        let items = match &scheme {
            PagingScheme::Cursor { items, .. }
            | PagingScheme::Offset { items, .. }
            | PagingScheme::Page { items, .. }
            | PagingScheme::LinkHeader { items } => items.clone(),
        };
        let item = item_type(api, op, &items).unwrap_or_else(|| {
            diagnostics.push(Diagnostic::warning(
                &op.pointer,
                format!(
                    "the items of `{}` have no known type; pages yield JSON values",
                    op.id
                ),
            ));
            TypeRef::Any
        });
        let namer = taken.entry(op.group.clone()).or_default();
        let method = namer.unique(&format!("{}_pages", bare(&op.name)));
        found.push((
            index,
            Paging {
                method,
                scheme,
                item,
            },
        ));
    }
    for (index, paging) in found {
        api.operations[index].paging = Some(paging);
    }
    diagnostics
}

fn scheme(rule: &PagingRule) -> PagingScheme {
    match rule {
        PagingRule::Cursor {
            param,
            items,
            has_more,
            next,
        } => PagingScheme::Cursor {
            param: param.value.clone(),
            items: items.value.clone(),
            has_more: has_more.as_ref().map(|n| n.value.clone()),
            next: match next.value.strip_prefix("last_item.") {
                Some(field) => CursorFrom::LastItem(field.to_owned()),
                None => CursorFrom::Response(next.value.clone()),
            },
        },
        PagingRule::Offset { param, items } => PagingScheme::Offset {
            param: param.value.clone(),
            items: items.value.clone(),
        },
        PagingRule::Page {
            param,
            items,
            first,
        } => PagingScheme::Page {
            param: param.value.clone(),
            items: items.value.clone(),
            first: *first,
        },
        PagingRule::LinkHeader { items } => PagingScheme::LinkHeader {
            items: items.as_ref().map_or_else(String::new, |n| n.value.clone()),
        },
    }
}

/// The JSON type of `op`'s first successful response.
pub(crate) fn success_json(op: &Operation) -> Option<&TypeRef> {
    op.responses
        .iter()
        .filter(|r| r.status.is_success())
        .flat_map(|r| &r.contents)
        .find(|c| c.encoding == Encoding::Json)
        .map(|c| &c.ty)
}

/// The fields of the struct `ty` names, through aliases, options and boxes.
pub(crate) fn struct_fields<'a>(api: &'a Api, ty: &TypeRef) -> Option<&'a [Field]> {
    match strip(api, ty) {
        TypeRef::Named(name) => match &api.types.iter().find(|t| t.name == name)?.kind {
            TypeKind::Struct(s) => Some(&s.fields),
            _ => None,
        },
        _ => None,
    }
}

/// `ty` without aliases, options and boxes around it.
fn strip(api: &Api, ty: &TypeRef) -> TypeRef {
    let mut ty = ty.clone();
    for _ in 0..16 {
        ty = match ty {
            TypeRef::Option(inner) | TypeRef::Box(inner) => *inner,
            TypeRef::Named(name) => {
                match api.types.iter().find(|t| t.name == name).map(|t| &t.kind) {
                    Some(TypeKind::Alias(inner)) => inner.clone(),
                    _ => return TypeRef::Named(name),
                }
            }
            other => return other,
        };
    }
    ty
}

/// The type of one item: the element type of field `items` of the success response
/// (of the response itself when `items` is empty).
fn item_type(api: &Api, op: &Operation, items: &str) -> Option<TypeRef> {
    let body = success_json(op)?;
    let list = if items.is_empty() {
        body.clone()
    } else {
        struct_fields(api, body)?
            .iter()
            .find(|f| f.name == items)?
            .ty
            .clone()
    };
    match strip(api, &list) {
        TypeRef::Array(inner) => Some(*inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("List*", "ListCustomers"));
        assert!(glob_match("*Customer*", "GetCustomerBalance"));
        assert!(glob_match("/v1/customers/*", "/v1/customers/{id}/sources"));
        assert!(glob_match("get?et", "getPet"));
        assert!(!glob_match("List*", "GetList"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }
}
