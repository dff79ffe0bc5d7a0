//! The generated Stripe client (`polvo-stripe`) against a loopback server playing
//! Stripe: what it puts on the wire (nested form fields, `expand[]`, cursors, the
//! secret key), how it reads Stripe's objects and error bodies back, and the retry policy
//! its annotations give it.

mod common;

use std::time::Duration;

use common::{Reply, SLACK, TestResult, TestServer, ms};
use polvo_runtime::RetryPolicy;
use polvo_stripe::StripeClient;
use polvo_stripe::resources::customers::ListCustomersParams;
use polvo_stripe::types::{
    AddressParams, ApiErrorsType, ChargeCreateParams, CustomerCreateParams,
    CustomerInvoiceSettingsDefaultPaymentMethod, Error as StripeError,
};

/// A customer as Stripe returns it, with `metadata` and an unexpanded payment method.
const CUSTOMER: &str = r#"{
    "id": "cus_NffrFeUfNV2Hib",
    "object": "customer",
    "address": {"city": "Lisbon", "country": "PT", "line1": "Rua Augusta 1",
                "line2": null, "postal_code": null, "state": null},
    "balance": 0,
    "created": 1680893993,
    "email": "jenny@example.com",
    "invoice_settings": {"default_payment_method": "pm_1MqLiJLkdIwHu7ix", "footer": null},
    "livemode": false,
    "metadata": {"order_id": "6735", "plan": "pro"},
    "name": "Jenny Rosen",
    "phone": null
}"#;

/// A client for `server` with a sandbox key.
fn client(server: &TestServer) -> Result<StripeClient, polvo_stripe::Error> {
    StripeClient::builder()
        .base_url(server.url())
        .api_key("sk_test_4eC39HqLyjWDarjtT1zdp7dc")
        .build()
}

#[tokio::test]
async fn create_customer_sends_nested_form_fields() -> TestResult {
    let server = TestServer::builder()
        .otherwise(Reply::status(200).body(CUSTOMER))
        .start()
        .await?;
    let params = CustomerCreateParams {
        address: Some(AddressParams {
            city: Some("Lisbon".into()),
            country: Some("PT".into()),
            line1: Some("Rua Augusta 1".into()),
            ..Default::default()
        }),
        email: Some("jenny@example.com".into()),
        expand: Some(vec!["invoice_settings.default_payment_method".into()]),
        metadata: Some(
            [("order_id", "6735"), ("plan", "pro")]
                .map(|(k, v)| (k.into(), v.into()))
                .into(),
        ),
        name: Some("Jenny Rosen".into()),
        ..Default::default()
    };

    let customer = client(&server)?.customers().create(&params).await?;

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, http::Method::POST);
    assert_eq!(seen[0].path, "/v1/customers");
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc")
    );
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // Fields in name order, nested ones in brackets, arrays by index.
    assert_eq!(
        std::str::from_utf8(&seen[0].body)?,
        "address%5Bcity%5D=Lisbon&address%5Bcountry%5D=PT\
         &address%5Bline1%5D=Rua+Augusta+1&email=jenny%40example.com\
         &expand%5B0%5D=invoice_settings.default_payment_method\
         &metadata%5Border_id%5D=6735&metadata%5Bplan%5D=pro&name=Jenny+Rosen"
    );

    assert_eq!(customer.id, "cus_NffrFeUfNV2Hib");
    assert_eq!(customer.metadata["plan"], "pro");
    assert_eq!(customer.email, Some(Some("jenny@example.com".into())));
    assert_eq!(
        customer.phone,
        Some(None),
        "an explicit null stays apart from absent"
    );
    let settings = customer.invoice_settings.ok_or("no invoice_settings")?;
    assert_eq!(
        settings.default_payment_method,
        Some(Some(CustomerInvoiceSettingsDefaultPaymentMethod::String(
            "pm_1MqLiJLkdIwHu7ix".into()
        )))
    );
    Ok(())
}

#[tokio::test]
async fn list_customers_sends_cursor_and_expand() -> TestResult {
    let page = format!(
        r#"{{"object": "list", "url": "/v1/customers", "has_more": true, "data": [{CUSTOMER}]}}"#
    );
    let server = TestServer::builder()
        .otherwise(Reply::status(200).body(page))
        .start()
        .await?;
    let params = ListCustomersParams {
        expand: Some(vec!["data.default_source".into()]),
        limit: Some(1),
        starting_after: Some("cus_A".into()),
        ..Default::default()
    };

    let list = client(&server)?.customers().list(&params).await?;

    let seen = server.seen();
    assert_eq!(seen[0].method, http::Method::GET);
    assert_eq!(seen[0].path, "/v1/customers");
    assert_eq!(
        seen[0].query.as_deref(),
        Some("expand%5B%5D=data.default_source&limit=1&starting_after=cus_A")
    );
    assert!(seen[0].body.is_empty());
    assert!(list.has_more);
    assert_eq!(list.url, "/v1/customers");
    let ids: Vec<&str> = list.data.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cus_NffrFeUfNV2Hib"]);
    Ok(())
}

#[tokio::test]
async fn a_declined_card_decodes_into_the_typed_error() -> TestResult {
    let body = r#"{"error": {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "doc_url": "https://docs.stripe.com/error-codes/card-declined",
        "message": "Your card has insufficient funds.",
        "param": "",
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_1"
    }}"#;
    let server = TestServer::builder()
        .otherwise(Reply::status(402).body(body))
        .start()
        .await?;
    let params = ChargeCreateParams {
        amount: 2000,
        currency: "usd".into(),
        source: Some("tok_chargeDeclinedInsufficientFunds".into()),
        ..Default::default()
    };

    let err = match client(&server)?.charges().create(&params).await {
        Ok(charge) => return Err(format!("expected a 402, got charge {}", charge.id).into()),
        Err(err) => err,
    };

    assert_eq!(server.received(), 1, "a 402 is not retried");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(402));
    assert!(!err.is_rate_limited());
    let typed: StripeError = err
        .api()
        .and_then(|api| api.decode())
        .ok_or("the body did not decode as a Stripe error")?;
    assert_eq!(typed.error.r#type, ApiErrorsType::CardError);
    assert_eq!(typed.error.code.as_deref(), Some("card_declined"));
    assert_eq!(
        typed.error.decline_code.as_deref(),
        Some("insufficient_funds")
    );
    assert_eq!(
        typed.error.message.as_deref(),
        Some("Your card has insufficient funds.")
    );
    // A type this client does not know yet is kept, not refused.
    let unknown: StripeError = serde_json::from_str(r#"{"error": {"type": "rate_limit_error"}}"#)?;
    assert_eq!(
        unknown.error.r#type,
        ApiErrorsType::Other("rate_limit_error".into())
    );
    Ok(())
}

#[test]
fn the_annotated_retry_policy_is_the_clients() -> TestResult {
    // specs/stripe/polvo.yaml: statuses [429, 500, 503], 4 attempts, backoff from 500 ms
    // to 8 s, Retry-After up to 60 s, Idempotency-Key, Stripe-Should-Retry; no budget
    // given, so the runtime's.
    let policy = StripeClient::policy()?;
    let retry = policy.retry();
    for status in [429, 500, 503] {
        assert!(retry.retries_status(status), "{status} is retried");
    }
    assert!(!retry.retries_status(502), "502 is not in the annotations");
    assert_eq!(retry.max_attempts(), 4);
    assert_eq!(retry.max_retry_after(), Duration::from_secs(60));
    let header = |name: Option<&http::HeaderName>| name.map(|n| n.as_str().to_owned());
    assert_eq!(
        header(retry.idempotency_header()).as_deref(),
        Some("idempotency-key")
    );
    assert_eq!(
        header(retry.hint_header()).as_deref(),
        Some("stripe-should-retry")
    );
    assert_eq!(retry.budget(), RetryPolicy::default().budget());

    // Full jitter under 500 ms before the first retry, and under the 8 s cap later. Of
    // 200 draws, one above the runtime's default base of 100 ms shows the annotated base
    // is used (all 200 below it by chance: 0.2^200).
    let first: Vec<Duration> = (0..200).map(|_| retry.backoff(1)).collect();
    assert!(first.iter().all(|d| *d <= Duration::from_millis(500)));
    assert!(first.iter().any(|d| *d > Duration::from_millis(100)));
    let late: Vec<Duration> = (0..200).map(|_| retry.backoff(10)).collect();
    assert!(late.iter().all(|d| *d <= Duration::from_secs(8)));
    assert!(late.iter().any(|d| *d > Duration::from_secs(4)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_is_retried_with_one_idempotency_key() -> TestResult {
    // A 500 and a 503, then the customer: retried as the annotations say, under the
    // backoff's ceilings (500 ms, then 1 s), every attempt with the key of the first.
    let server = TestServer::builder()
        .reply(Reply::status(500))
        .reply(Reply::status(503))
        .otherwise(Reply::status(200).body(CUSTOMER))
        .start()
        .await?;

    let customer = client(&server)?
        .customers()
        .create(&CustomerCreateParams::default())
        .await?;

    assert_eq!(customer.id, "cus_NffrFeUfNV2Hib");
    assert_eq!(server.statuses(), [500, 503, 200]);
    let seen = server.seen();
    let key = seen[0]
        .header("idempotency-key")
        .ok_or("no idempotency key")?;
    assert!(
        seen.iter()
            .all(|s| s.header("idempotency-key") == Some(key))
    );
    let gaps = server.gaps();
    assert!(gaps[0] <= ms(500) + SLACK, "first backoff {:?}", gaps[0]);
    assert!(gaps[1] <= ms(1000) + SLACK, "second backoff {:?}", gaps[1]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn stripe_should_retry_false_is_final() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(503).header("stripe-should-retry", "false"))
        .otherwise(Reply::status(200).body(CUSTOMER))
        .start()
        .await?;

    let result = client(&server)?
        .customers()
        .list(&ListCustomersParams::default())
        .await;

    let err = result.err().ok_or("a 503 the server said not to retry")?;
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.statuses(), [503], "not retried");
    Ok(())
}
