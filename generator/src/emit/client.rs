//! The `client` module: the client type, its builder with one helper per security
//! scheme, and an accessor per resource group; plus the crate documentation.

use proc_macro2::TokenStream;
use quote::quote;

use crate::emit::docs::{doc_attrs, inner_doc_attrs};
use crate::emit::resources::handle_name;
use crate::emit::{doc_lint_allows, group_module, ident};
use crate::ir::{Api, SecurityKind};
use crate::naming::{Namer, bare, snake};

/// Names the client and builder already use, which accessors and helpers must avoid.
const CLIENT_METHODS: &[&str] = &[
    "builder",
    "bulk",
    "from_runtime",
    "policy",
    "runtime",
    "usage",
];
const BUILDER_METHODS: &[&str] = &[
    "base_url",
    "auth",
    "rate_limit",
    "max_wait",
    "max_in_flight",
    "precise_wakeups",
    "retry",
    "policy",
    "with_policy",
    "user_agent",
    "timeout",
    "configure",
    "store",
    "local_quota",
    "shared_quota",
    "build",
];

/// The `client` module.
pub(super) fn module(api: &Api) -> TokenStream {
    let service = &api.service;
    let client = ident(&service.client);
    let builder = ident(&format!("{}Builder", service.client));
    let name = &service.name;
    let docs = inner_doc_attrs(&format!("The {} client and its builder.", api.title));
    let lints = doc_lint_allows();
    let client_doc = doc_attrs(&format!(
        "Client for the {} API (version {}). Cheap to clone: clones share connections and \
         rate limits.\n\nMake one with [`{}::builder`].",
        api.title, api.version, service.client
    ));
    let (base_const, base_call) = match service.base_url.as_deref().filter(|u| u.contains("://")) {
        Some(url) => (
            quote! {
                /// The base URL the builder starts with.
                pub const DEFAULT_BASE_URL: &'static str = #url;
            },
            quote!(.base_url(Self::DEFAULT_BASE_URL)),
        ),
        None => (TokenStream::new(), TokenStream::new()),
    };

    let mut accessors_namer = Namer::with_taken(CLIENT_METHODS.iter().copied());
    let mut groups: Vec<&str> = api.operations.iter().map(|o| o.group.as_str()).collect();
    groups.dedup();
    let accessors = groups.iter().map(|group| {
        let method = ident(&accessors_namer.unique(&snake(group)));
        let module = ident(&group_module(group));
        let handle = ident(&handle_name(group));
        let doc = format!(" Operations of the `{group}` group.");
        quote! {
            #[doc = #doc]
            pub fn #method(&self) -> super::resources::#module::#handle<'_> {
                super::resources::#module::#handle::new(&self.inner)
            }
        }
    });
    let helpers = auth_helpers(api);
    let policy_fn = super::policy::policy_fn(&api.policy);
    let bulk = bulk();
    let StoreParts {
        consts: store_const,
        field: store_field,
        init: store_init,
        methods: store_methods,
        apply: store_apply,
    } = store(api);
    let builder_doc = doc_attrs(&format!(
        "Builds a [`{0}`]; from [`{0}::builder`].",
        service.client
    ));

    quote! {
        #docs
        #lints

        #client_doc
        #[derive(Debug, Clone)]
        pub struct #client {
            inner: polvo_runtime::Client,
        }

        impl #client {
            /// The service name used for rate limits and logs.
            pub const SERVICE: &'static str = #name;
            #base_const
            #store_const

            #policy_fn

            /// A builder starting from [`Self::policy`] and the default base URL.
            pub fn builder() -> #builder {
                let (policy, error) = match Self::policy() {
                    Ok(policy) => (policy, None),
                    Err(error) => (polvo_runtime::Policy::default(), Some(error)),
                };
                #builder {
                    inner: polvo_runtime::Client::builder(Self::SERVICE, policy) #base_call,
                    error,
                    #store_init
                }
            }

            #bulk

            /// Wraps a runtime client built elsewhere.
            pub fn from_runtime(inner: polvo_runtime::Client) -> Self {
                Self { inner }
            }

            /// The runtime client, for requests this crate has no method for.
            pub fn runtime(&self) -> &polvo_runtime::Client {
                &self.inner
            }

            /// A snapshot of rate-limit usage per bucket.
            pub fn usage(&self) -> polvo_runtime::Usage {
                self.inner.usage()
            }

            #(#accessors)*
        }

        #builder_doc
        #[derive(Debug)]
        pub struct #builder {
            inner: polvo_runtime::ClientBuilder,
            error: Option<polvo_runtime::ConfigError>,
            #store_field
        }

        impl #builder {
            /// The base URL every path is joined to.
            pub fn base_url(mut self, url: impl Into<String>) -> Self {
                self.inner = self.inner.base_url(url);
                self
            }

            /// The credentials.
            pub fn auth(mut self, auth: polvo_runtime::Auth) -> Self {
                self.inner = self.inner.auth(auth);
                self
            }

            #helpers

            /// Limits the default bucket to `per_second` requests per second.
            pub fn rate_limit(mut self, per_second: u32) -> Self {
                self.inner = self.inner.rate_limit(per_second);
                self
            }

            /// Fails requests that would wait longer than `max_wait` for quota.
            pub fn max_wait(mut self, max_wait: std::time::Duration) -> Self {
                self.inner = self.inner.max_wait(max_wait);
                self
            }

            /// Caps requests in flight.
            pub fn max_in_flight(mut self, max: usize) -> Self {
                self.inner = self.inner.max_in_flight(max);
                self
            }

            /// Wakes paced requests on a timer thread for the last `window` of each wait
            /// (3 ms by default); `Duration::ZERO` leaves them to tokio's timer.
            pub fn precise_wakeups(mut self, window: std::time::Duration) -> Self {
                self.inner = self.inner.precise_wakeups(window);
                self
            }

            /// Replaces the retry policy.
            pub fn retry(mut self, retry: polvo_runtime::RetryPolicy) -> Self {
                self.inner = self.inner.retry(retry);
                self
            }

            /// Replaces the whole rate-limit policy.
            pub fn policy(mut self, policy: polvo_runtime::Policy) -> Self {
                self.inner = self.inner.policy(policy);
                self
            }

            /// The `User-Agent` header.
            pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
                self.inner = self.inner.user_agent(user_agent);
                self
            }

            /// The whole-request timeout; `None` turns it off.
            pub fn timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
                self.inner = self.inner.timeout(timeout);
                self
            }

            #store_methods

            /// Any other runtime setting (quota store, HTTP client, ...).
            pub fn configure(
                mut self,
                change: impl FnOnce(polvo_runtime::ClientBuilder) -> polvo_runtime::ClientBuilder,
            ) -> Self {
                self.inner = change(self.inner);
                self
            }

            /// Builds the client.
            ///
            /// # Errors
            ///
            /// [`polvo_runtime::Error::Config`] for a missing or invalid base URL, an
            /// invalid policy or credentials that cannot be sent.
            pub fn build(self) -> Result<#client, polvo_runtime::Error> {
                if let Some(error) = self.error {
                    return Err(error.into());
                }
                let inner = self.inner;
                #store_apply
                Ok(#client { inner: inner.build()? })
            }
        }
    }
}

/// The client's `bulk` method; the annotations' concurrency cap is in the policy.
fn bulk() -> TokenStream {
    quote! {
        /// Starts a bulk run of `operation` (an operation id), sized by its limits and
        /// capped by the policy's `bulk_max_concurrency`; set options with
        /// [`polvo_runtime::bulk::Bulk::options`]. Make typed calls in it with
        /// [`Self::from_runtime`].
        pub fn bulk(&self, operation: &'static str) -> polvo_runtime::bulk::Bulk {
            self.inner.bulk(operation)
        }
    }
}

/// Pieces of the client and builder for a quota shared through Redis.
#[derive(Default)]
struct StoreParts {
    consts: TokenStream,
    field: TokenStream,
    init: TokenStream,
    methods: TokenStream,
    apply: TokenStream,
}

/// With `store.shared: redis`, `build()` shares quota through the Redis server named by
/// the environment variable, unless the caller chose a store.
fn store(api: &Api) -> StoreParts {
    // With `store.shared` in the annotations, a store chosen here replaces the Redis
    // server the environment names.
    let annotated = api.policy.store.as_ref();
    let release = annotated.map(|_| quote!(self.shared_quota = false;));
    let store_doc = doc_attrs(match annotated {
        Some(_) => {
            "Keeps quota state in `store` instead of the Redis server named by the \
                    environment."
        }
        None => {
            "Keeps quota state in `store` instead of this process's memory, for example \
                 a `polvo_runtime::RedisStore` that several processes share."
        }
    });
    let shared_doc = doc_attrs(
        "Shares quota with every process using the Redis server at `redis_url` with the \
         same credentials; while Redis is unreachable this process takes half of each \
         limit. Needs this crate's `redis` feature: without it `build()` fails saying so.",
    );
    let methods = quote! {
        #store_doc
        pub fn store(
            mut self,
            store: std::sync::Arc<dyn polvo_runtime::QuotaStore>,
        ) -> Self {
            self.inner = self.inner.store(store);
            #release
            self
        }

        #shared_doc
        pub fn shared_quota(mut self, redis_url: &str) -> Self {
            self.inner = self.inner.shared_quota(redis_url);
            #release
            self
        }
    };
    let Some(store) = annotated else {
        return StoreParts {
            methods,
            ..StoreParts::default()
        };
    };
    let env = &store.url_env;
    let client_ident = ident(&api.service.client);
    let on_failure = match store.local_share_per_mille {
        Some(per_mille) => {
            let share = f64::from(per_mille) / 1000.0;
            quote!(polvo_runtime::OnFailure::Local { share: #share })
        }
        None => quote!(polvo_runtime::OnFailure::Fail),
    };
    let const_doc = format!(
        " The environment variable naming the Redis server through which clients share \
         quota (`{env}`); read by `build()`."
    );
    StoreParts {
        consts: quote! {
            #[doc = #const_doc]
            pub const QUOTA_URL_ENV: &'static str = #env;
        },
        field: quote!(shared_quota: bool,),
        init: quote!(shared_quota: true,),
        methods: quote! {
            #methods

            /// Keeps quota in this process even when the environment names a Redis server.
            pub fn local_quota(mut self) -> Self {
                self.shared_quota = false;
                self
            }
        },
        apply: quote! {
            let url = std::env::var(#client_ident::QUOTA_URL_ENV)
                .ok()
                .filter(|url| !url.is_empty());
            let inner = match url {
                Some(url) if self.shared_quota => inner.shared_quota_with(&url, #on_failure),
                _ => inner,
            };
        },
    }
}

/// One builder method per security scheme.
fn auth_helpers(api: &Api) -> TokenStream {
    let mut namer = Namer::with_taken(BUILDER_METHODS.iter().copied());
    let mut out = TokenStream::new();
    for scheme in &api.security {
        let (base, body, args) = match &scheme.kind {
            SecurityKind::Bearer => (
                credential_method(&scheme.name, "bearer_token"),
                quote!(self.auth(polvo_runtime::Auth::bearer(token))),
                quote!(token: impl Into<String>),
            ),
            SecurityKind::Basic => (
                credential_method(&scheme.name, "basic_auth"),
                quote!(self.auth(polvo_runtime::Auth::basic(user, password))),
                quote!(user: impl Into<String>, password: impl Into<String>),
            ),
            SecurityKind::HeaderKey(header) => (
                bare(&snake(&scheme.name)).to_owned(),
                quote! {
                    match polvo_runtime::Auth::header(#header, key) {
                        Ok(auth) => self.auth(auth),
                        Err(error) => Self { error: Some(error), ..self },
                    }
                },
                quote!(key: impl Into<String>),
            ),
            SecurityKind::QueryKey(param) => (
                bare(&snake(&scheme.name)).to_owned(),
                quote!(self.auth(polvo_runtime::Auth::query(#param, key))),
                quote!(key: impl Into<String>),
            ),
        };
        // A second scheme of the same generic kind adds nothing the first does not.
        if namer.is_taken(&base) && ["bearer_token", "basic_auth"].contains(&base.as_str()) {
            continue;
        }
        let method = ident(&namer.unique(&snake(&base)));
        let mut doc = format!("Credentials for the `{}` security scheme.", scheme.name);
        if let Some(description) = &scheme.description {
            doc = format!("{doc}\n\n{description}");
        }
        let docs = doc_attrs(&doc);
        out.extend(quote! {
            #docs
            pub fn #method(self, #args) -> Self {
                #body
            }
        });
    }
    out
}

/// The builder method of an HTTP scheme: named after the scheme (Stripe's `api_key`),
/// unless the name only repeats the scheme's kind (`bearer`, `basicAuth`), where the
/// generic name reads better.
fn credential_method(scheme: &str, generic: &str) -> String {
    let name = bare(&snake(scheme)).to_owned();
    let kind = generic.split('_').next().unwrap_or(generic);
    let repeats_kind = name
        .strip_prefix("http_")
        .unwrap_or(&name)
        .strip_prefix(kind)
        .is_some_and(|rest| ["", "_auth", "_token"].contains(&rest));
    if repeats_kind || name.is_empty() {
        generic.to_owned()
    } else {
        name
    }
}

/// Crate documentation: what the crate is and an example.
pub(super) fn crate_doc(api: &Api) -> Vec<String> {
    let service = &api.service;
    let krate = service.crate_name.replace('-', "_");
    let mut text = format!(
        "# {krate}\n\nA typed, rate-limit-aware client for the {} API (version {}), generated \
         by polvo-gen. Every request goes through `polvo_runtime`, which paces requests, \
         reads rate-limit headers and retries when safe.\n\n",
        api.title, api.version
    );
    if let Some(description) = &api.description {
        text.push_str(description.trim());
        text.push_str("\n\n");
    }
    let base = match service.base_url.as_deref().filter(|u| u.contains("://")) {
        Some(_) => String::new(),
        None => "\n    .base_url(\"https://api.example.com\")".into(),
    };
    let call = example_call(api);
    text.push_str(&format!(
        "```no_run\n# async fn run() -> Result<(), polvo_runtime::Error> {{\n\
         let client = {krate}::{client}::builder(){base}\n    .rate_limit(10)\n    .build()?;\n\
         {call}println!(\"{{}}\", client.usage());\n# Ok(())\n# }}\n```",
        client = service.client,
    ));
    crate::emit::docs::clean(&text)
}

/// A call of the first operation that needs no arguments, for the crate example.
fn example_call(api: &Api) -> String {
    let op = api
        .operations
        .iter()
        .find(|op| op.bodies.is_empty() && op.params.iter().all(|p| !p.required));
    let Some(op) = op else {
        return String::new();
    };
    let args = if op.params.is_empty() {
        ""
    } else {
        "&Default::default()"
    };
    let group = bare(&snake(&op.group)).to_owned();
    let mut accessors = Namer::with_taken(CLIENT_METHODS.iter().copied());
    let accessor = accessors.unique(&group);
    format!("let _ = client.{accessor}().{}({args}).await?;\n", op.name)
}
