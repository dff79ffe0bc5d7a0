//! What the transport puts on the wire: paths, query styles and every body kind, as a
//! real server receives them.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod common;

use common::{TestResult, TestServer, client_for};
use polvo_runtime::{Method, Part, Policy, QueryStyle, Request};
use serde_json::json;

#[tokio::test]
async fn path_and_query_are_encoded_per_style() -> TestResult {
    let server = TestServer::builder().start().await?;
    let client = client_for(&server, Policy::default()).build()?;

    let request = Request::new(Method::GET, "/pets/{petId}/photos", "listPhotos")
        .path("petId", "a b/c")
        .query("tags", &["x", "y"], QueryStyle::Form)
        .query("ids", &[1, 2], QueryStyle::FormCompact)
        .query(
            "filter",
            &json!({"size": {"gt": 3}}),
            QueryStyle::DeepObject,
        )
        .query("missing", &None::<u8>, QueryStyle::Form);
    client.execute(request).await?;

    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/pets/a%20b%2Fc/photos");
    assert_eq!(
        seen.query.as_deref(),
        Some("tags=x&tags=y&ids=1%2C2&filter%5Bsize%5D%5Bgt%5D=3")
    );
    Ok(())
}

#[tokio::test]
async fn json_and_nested_form_bodies() -> TestResult {
    let server = TestServer::builder().start().await?;
    let client = client_for(&server, Policy::default()).build()?;

    let body = json!({"name": "Rex", "tags": ["a"]});
    client
        .execute(Request::new(Method::POST, "/pets", "createPet").json(&body))
        .await?;
    let form = json!({
        "email": "a@b.c",
        "metadata": {"plan": "gold"},
        "items": [{"price": "p_1", "quantity": 2}],
    });
    client
        .execute(Request::new(Method::POST, "/customers", "createCustomer").form(&form))
        .await?;

    let seen = server.seen();
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[0].body)?,
        body
    );
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        std::str::from_utf8(&seen[1].body)?,
        "email=a%40b.c&items%5B0%5D%5Bprice%5D=p_1&items%5B0%5D%5Bquantity%5D=2\
         &metadata%5Bplan%5D=gold"
    );
    Ok(())
}

#[tokio::test]
async fn multipart_and_raw_bodies_survive_a_retry() -> TestResult {
    let server = TestServer::builder()
        .reply(common::Reply::status(503))
        .reply(common::Reply::status(503))
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    let parts = vec![
        Part::text("caption", "a dog"),
        Part::file("photo", "rex.png", vec![0x89, 0x50, 0x4e, 0x47]).content_type("image/png"),
    ];
    let upload = Request::new(Method::PUT, "/pets/1/photo", "uploadPhoto").multipart(parts);
    client.execute(upload).await?;
    let raw = Request::new(Method::PUT, "/pets/1/blob", "putBlob")
        .bytes(vec![1, 2, 3], "application/octet-stream");
    client.execute(raw).await?;

    let seen = server.seen();
    assert_eq!(
        seen.len(),
        4,
        "two 503s, then the multipart upload, then the raw body"
    );
    let bodies: Vec<_> = seen[..3].iter().map(|s| s.body.clone()).collect();
    assert!(!bodies[0].is_empty());
    // Every attempt carries the whole body (the boundary differs per attempt).
    for (attempt, body) in bodies.iter().enumerate() {
        let text = String::from_utf8_lossy(body);
        assert!(
            text.contains("name=\"caption\"") && text.contains("a dog"),
            "attempt {attempt}"
        );
        assert!(
            text.contains("filename=\"rex.png\"") && text.contains("image/png"),
            "attempt {attempt}"
        );
    }
    assert!(
        seen[0]
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    assert_eq!(seen[3].body.as_ref(), [1, 2, 3]);
    assert_eq!(
        seen[3].header("content-type"),
        Some("application/octet-stream")
    );
    Ok(())
}

#[tokio::test]
async fn invalid_requests_fail_before_sending() -> TestResult {
    let server = TestServer::builder().start().await?;
    let client = client_for(&server, Policy::default()).build()?;

    let missing = Request::new(Method::GET, "/pets/{petId}", "getPet");
    let error = client.execute(missing).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: path parameter `petId` has no value"
    );

    let bad_header = Request::new(Method::GET, "/pets", "listPets").header("x-note", "a\nb");
    let error = client.execute(bad_header).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: header `x-note` has a name or value that cannot be sent"
    );
    assert_eq!(server.received(), 0);
    Ok(())
}
