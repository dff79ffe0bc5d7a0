//! Lowering: a loaded [`Spec`] and its annotations into the plain-data [`Api`].
//!
//! Types are lowered first (every `components.schemas` entry, then whatever operations
//! reach), operations second; names are chosen here so that emission never has to.

mod operations;
pub(crate) mod policy;
pub(crate) mod types;

use heck::ToKebabCase;
use openapiv3::{APIKeyLocation, ReferenceOr};

use crate::annotations::Annotations;
use crate::diagnostic::Diagnostic;
use crate::ir::{Api, SecurityKind, SecurityScheme, Service};
use crate::naming::{bare, camel, snake};
use crate::spec::Spec;

pub(crate) use operations::strip_group;
pub use types::{Lowered, TypeSpace};

/// Lowers `spec` to IR; `name` overrides the service name when annotations give none.
pub fn lower(spec: &Spec, annotations: &Annotations, name: Option<&str>) -> (Api, Vec<Diagnostic>) {
    let mut space = TypeSpace::new(spec);
    space.add_components();
    let place = |op: &crate::ir::Operation| policy::placement(annotations, op);
    let operations = operations::operations(spec, &mut space, &place);
    let (types, mut diagnostics) = space.finish();

    let info = &spec.api.info;
    let mut api = Api {
        service: service(spec, annotations, name),
        title: info.title.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        operations,
        types,
        security: security(spec),
        policy: crate::ir::Policy::default(),
    };
    diagnostics.extend(policy::apply(&mut api, annotations));
    (api, diagnostics)
}

/// Names from the annotations, else from `--name`, else from the title.
fn service(spec: &Spec, annotations: &Annotations, name: Option<&str>) -> Service {
    let given = annotations.service.clone().unwrap_or_default();
    let name = given
        .name
        .or_else(|| name.map(str::to_owned))
        .unwrap_or_else(|| bare(&snake(&spec.api.info.title)).to_owned());
    let base_url = given
        .base_urls
        .get("default")
        .or_else(|| {
            let first = given.base_url_order.first()?;
            given.base_urls.get(first)
        })
        .cloned()
        .or_else(|| spec.api.servers.first().map(server_url));
    Service {
        crate_name: given.crate_name.unwrap_or_else(|| name.to_kebab_case()),
        client: given
            .client
            .unwrap_or_else(|| format!("{}Client", bare(&camel(&name)))),
        name,
        base_url,
    }
}

/// A server URL with its variables at their defaults.
fn server_url(server: &openapiv3::Server) -> String {
    let mut url = server.url.clone();
    if let Some(variables) = &server.variables {
        for (name, variable) in variables {
            url = url.replace(&format!("{{{name}}}"), &variable.default);
        }
    }
    url
}

fn security(spec: &Spec) -> Vec<SecurityScheme> {
    let Some(components) = &spec.api.components else {
        return Vec::new();
    };
    let mut out: Vec<SecurityScheme> = components
        .security_schemes
        .iter()
        .filter_map(|(name, scheme)| {
            let scheme = match scheme {
                ReferenceOr::Item(scheme) => scheme.clone(),
                ReferenceOr::Reference { reference } => spec.resolve_ref(reference).ok()?,
            };
            let (kind, description) = match scheme {
                openapiv3::SecurityScheme::HTTP {
                    scheme,
                    description,
                    ..
                } => match scheme.to_ascii_lowercase().as_str() {
                    "basic" => (SecurityKind::Basic, description),
                    _ => (SecurityKind::Bearer, description),
                },
                openapiv3::SecurityScheme::APIKey {
                    location,
                    name,
                    description,
                    ..
                } => match location {
                    APIKeyLocation::Header => (SecurityKind::HeaderKey(name), description),
                    APIKeyLocation::Query => (SecurityKind::QueryKey(name), description),
                    APIKeyLocation::Cookie => return None,
                },
                openapiv3::SecurityScheme::OAuth2 { description, .. }
                | openapiv3::SecurityScheme::OpenIDConnect { description, .. } => {
                    (SecurityKind::Bearer, description)
                }
            };
            Some(SecurityScheme {
                name: name.clone(),
                kind,
                description,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
