//! The client's embedded policy: a `policy()` function that builds the runtime's
//! `Policy` from the annotations' buckets, groups, modes, header tracking, retry and
//! bulk settings.
//!
//! Every value was checked when the annotations were read, so the runtime constructors
//! called here succeed; they still return errors rather than panic, and `builder()`
//! carries such an error to `build()`.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::ir::{Bucket, ModeWhen, Policy, Rate, ResetKind, Retry, Tracking};

/// The `policy()` function of the client type.
pub(super) fn policy_fn(policy: &Policy) -> TokenStream {
    let buckets = policy.buckets.iter().map(|bucket| {
        let name = &bucket.name;
        let limits = limits(bucket);
        let in_flight = bucket.max_in_flight.map(|max| {
            let max = Literal::u32_unsuffixed(max);
            quote!(.bucket_in_flight(#name, #max))
        });
        quote!(.bucket(#name, #limits) #in_flight)
    });
    let operations = policy.operations.iter().map(|op| {
        let (id, buckets, cost) = (&op.id, &op.buckets, Literal::u32_unsuffixed(op.cost));
        quote!(.operation(#id, [#(#buckets),*], #cost))
    });
    let modes = policy.modes.iter().map(|mode| {
        let name = &mode.name;
        let when = match &mode.when {
            ModeWhen::KeyPrefix(prefix) => {
                quote!(polvo_runtime::ModeCondition::KeyPrefix(#prefix.to_owned()))
            }
            ModeWhen::BaseUrl(url) => {
                quote!(polvo_runtime::ModeCondition::BaseUrl(#url.to_owned()))
            }
        };
        let buckets = mode.buckets.iter().map(|bucket| {
            let name = &bucket.name;
            let limits = limits(bucket);
            let in_flight = match bucket.max_in_flight {
                Some(max) => {
                    let max = Literal::u32_unsuffixed(max);
                    quote!(Some(#max))
                }
                None => quote!(None),
            };
            quote! {
                (
                    #name,
                    polvo_runtime::BucketPolicy {
                        limits: Vec::from(#limits),
                        max_in_flight: #in_flight,
                    },
                )
            }
        });
        quote!(.mode(#name, #when, [#(#buckets),*]))
    });
    let headers = policy.tracking.as_ref().map(|t| {
        let headers = headers(t);
        quote!(.headers(#headers))
    });
    let bulk = policy.bulk_max_concurrency.map(|max| {
        let max = Literal::u32_unsuffixed(max);
        quote!(.bulk_max_concurrency(#max))
    });
    let retry = policy.retry.as_ref().map(|r| {
        let retry = retry(r);
        quote!(.retry(#retry))
    });
    let uses_limit = policy
        .buckets
        .iter()
        .chain(policy.modes.iter().flat_map(|m| &m.buckets))
        .any(|b| !b.limits.is_empty());
    let limit_fn = uses_limit.then(|| {
        quote! {
            let limit = |bucket: &str, count: u32, period: std::time::Duration, burst: u32| {
                polvo_runtime::Limit::new(count, period)
                    .and_then(|limit| limit.with_burst(burst))
                    .map_err(|source| polvo_runtime::ConfigError::Limit {
                        bucket: bucket.to_owned(),
                        source,
                    })
            };
        }
    });
    quote! {
        /// The policy from the service's annotations file: its buckets, which operations
        /// spend them, modes, rate-limit headers and retries. [`Self::builder`] starts
        /// from it; change any part there.
        ///
        /// # Errors
        ///
        /// A [`polvo_runtime::ConfigError`] if a setting breaks a runtime rule, which
        /// polvo-gen checks beforehand.
        pub fn policy() -> Result<polvo_runtime::Policy, polvo_runtime::ConfigError> {
            #limit_fn
            polvo_runtime::Policy::builder()
                #(#buckets)*
                #(#operations)*
                #(#modes)*
                #headers
                #retry
                #bulk
                .build()
        }
    }
}

/// `[limit(..)?, ...]` for a bucket.
fn limits(bucket: &Bucket) -> TokenStream {
    let name = &bucket.name;
    let limits = bucket.limits.iter().map(
        |Rate {
             count,
             period_nanos,
             burst,
         }| {
            let count = Literal::u32_unsuffixed(*count);
            let period = duration(*period_nanos);
            let burst = Literal::u32_unsuffixed(*burst);
            quote!(limit(#name, #count, #period, #burst)?)
        },
    );
    quote!([#(#limits),*])
}

/// A `Duration` in the largest whole unit.
fn duration(nanos: u64) -> TokenStream {
    if nanos.is_multiple_of(1_000_000_000) {
        let secs = Literal::u64_unsuffixed(nanos / 1_000_000_000);
        quote!(std::time::Duration::from_secs(#secs))
    } else if nanos.is_multiple_of(1_000_000) {
        let millis = Literal::u64_unsuffixed(nanos / 1_000_000);
        quote!(std::time::Duration::from_millis(#millis))
    } else {
        let nanos = Literal::u64_unsuffixed(nanos);
        quote!(std::time::Duration::from_nanos(#nanos))
    }
}

/// A list of header names; an empty one needs its item type spelled out.
fn names(list: &[String]) -> TokenStream {
    if list.is_empty() {
        quote!(std::iter::empty::<&str>())
    } else {
        quote!([#(#list),*])
    }
}

fn headers(tracking: &Tracking) -> TokenStream {
    let lists = [
        (quote!(with_retry_after), &tracking.retry_after),
        (quote!(with_retry_after_ms), &tracking.retry_after_ms),
        (quote!(with_limit), &tracking.limit),
        (quote!(with_remaining), &tracking.remaining),
        (quote!(with_reset), &tracking.reset),
        (quote!(with_used), &tracking.used),
        (quote!(with_resource), &tracking.resource),
    ];
    let lists = lists.iter().map(|(method, list)| {
        let list = names(list);
        quote!(.and_then(|h| h.#method(#list)))
    });
    let (ratelimit, ratelimit_policy) = if tracking.ietf {
        (quote!(Some("ratelimit")), quote!(Some("ratelimit-policy")))
    } else {
        (quote!(None), quote!(None))
    };
    let kind = match tracking.reset_kind {
        ResetKind::Auto => quote!(Auto),
        ResetKind::Epoch => quote!(EpochSeconds),
        ResetKind::Delay => quote!(DelaySeconds),
        ResetKind::EpochMs => quote!(EpochMillis),
    };
    quote! {
        Ok(polvo_runtime::HeaderNames::default())
            #(#lists)*
            .and_then(|h| h.with_ietf_ratelimit(#ratelimit))
            .and_then(|h| h.with_ietf_policy(#ratelimit_policy))
            .map_err(|e| polvo_runtime::ConfigError::Client(format!("rate-limit header: {e}")))?
            .with_reset_kind(polvo_runtime::ResetKind::#kind)
    }
}

fn retry(retry: &Retry) -> TokenStream {
    let mut calls = Vec::new();
    if let Some(statuses) = &retry.statuses {
        let statuses = statuses.iter().map(|s| Literal::u16_unsuffixed(*s));
        calls.push(quote!(.statuses([#(#statuses),*])));
    }
    if let Some(attempts) = retry.attempts {
        let attempts = Literal::u32_unsuffixed(attempts);
        calls.push(quote!(.max_attempts(#attempts)));
    }
    if let Some((base, max)) = retry.backoff {
        let (base, max) = (duration(base), duration(max));
        calls.push(quote!(.backoff(#base, #max)));
    }
    if let Some(cap) = retry.max_retry_after {
        let cap = duration(cap);
        calls.push(quote!(.max_retry_after(#cap)));
    }
    match retry.budget {
        Some(Some(budget)) => {
            let per_mille = Literal::u32_unsuffixed(budget.per_mille);
            let min_per_second = Literal::u32_unsuffixed(budget.min_per_second);
            let config = quote! {
                polvo_runtime::BudgetConfig {
                    per_mille: #per_mille,
                    min_per_second: #min_per_second,
                }
            };
            calls.push(quote!(.budget(Some(#config))));
        }
        Some(None) => calls.push(quote!(.budget(None))),
        None => {}
    }
    if let Some(header) = &retry.idempotency_header {
        calls.push(quote!(.idempotency_header(#header)));
    }
    if let Some(methods) = &retry.idempotent_methods {
        let methods = methods.iter().map(|m| crate::emit::ident(m));
        calls.push(quote!(.idempotent_methods([#(polvo_runtime::Method::#methods),*])));
    }
    if let Some(header) = &retry.hint_header {
        calls.push(quote!(.hint_header(#header)));
    }
    quote!(polvo_runtime::RetryPolicy::builder() #(#calls)* .build()?)
}
