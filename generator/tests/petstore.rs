//! The generated pet store client, exercised: decoding rules of the emitted types, and
//! requests as they reach a server (query styles, path encoding, bodies).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors, as tests do"
)]

use std::io::{Read, Write};
use std::net::TcpListener;

use polvo_petstore::PetstoreClient;
use polvo_petstore::resources::pets::{ListPetsParams, ListPetsResponses};
use polvo_petstore::types::{Kind, Pet, PetFilter, PetStatus, PetUpdate};

#[test]
fn unknown_enum_values_and_tags_still_decode() {
    let status: PetStatus = serde_json::from_str("\"sold\"").unwrap();
    assert_eq!(status, PetStatus::Other("sold".into()));
    assert_eq!(serde_json::to_string(&status).unwrap(), "\"sold\"");
    assert_eq!(
        serde_json::from_str::<PetStatus>("\"pending\"").unwrap(),
        PetStatus::Pending
    );

    let kind: Kind = serde_json::from_str(r#"{"type": "dog", "good_boy": true}"#).unwrap();
    assert!(matches!(kind, Kind::Dog(dog) if dog.good_boy && dog.r#type == "dog"));
    let kind: Kind = serde_json::from_str(r#"{"type": "parrot"}"#).unwrap();
    assert!(matches!(kind, Kind::Unknown(_)));
}

#[test]
fn absent_and_null_stay_apart() {
    let base = r#""name": "Rex", "kind": {"type": "cat"}, "id": 7, "attributes": {}"#;
    let absent: Pet = serde_json::from_str(&format!("{{{base}}}")).unwrap();
    let null: Pet = serde_json::from_str(&format!("{{{base}, \"tag\": null}}")).unwrap();
    assert_eq!(absent.tag, None);
    assert_eq!(null.tag, Some(None));
    assert!(!serde_json::to_string(&absent).unwrap().contains("tag"));
    assert!(
        serde_json::to_string(&null)
            .unwrap()
            .contains("\"tag\":null")
    );
}

/// Serves one canned response and returns the raw request.
fn serve_once(
    status: &str,
    content_type: &str,
    body: &str,
) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).unwrap();
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        stream.write_all(response.as_bytes()).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (url, handle)
}

#[tokio::test]
async fn list_sends_form_and_deep_object_queries() {
    let page = r#"{"items": [], "has_more": false}"#;
    let (url, server) = serve_once("200 OK", "application/json", page);
    let client = PetstoreClient::builder().base_url(url).build().unwrap();
    let params = ListPetsParams {
        limit: Some(5),
        starting_after: None,
        tags: Some(vec!["a".into(), "b c".into()]),
        filter: Some(PetFilter {
            status: Some(PetStatus::Available),
            born_after: None,
        }),
        x_request_id: Some("r-1".into()),
    };
    let response = client.pets().list(&params).await.unwrap();
    assert!(matches!(response, ListPetsResponses::OkJson(page) if !page.has_more));
    let request = server.join().unwrap();
    let line = request.lines().next().unwrap();
    assert_eq!(
        line,
        "GET /pets?limit=5&tags=a&tags=b+c&filter%5Bstatus%5D=available HTTP/1.1"
    );
    assert!(request.to_ascii_lowercase().contains("x-request-id: r-1"));
}

#[tokio::test]
async fn csv_is_the_other_media_type_of_list() {
    let (url, server) = serve_once("200 OK", "text/csv; charset=utf-8", "id,name\n1,Rex\n");
    let client = PetstoreClient::builder().base_url(url).build().unwrap();
    let response = client
        .pets()
        .list(&ListPetsParams::default())
        .await
        .unwrap();
    assert!(matches!(response, ListPetsResponses::OkCsv(csv) if csv.starts_with("id,name")));
    server.join().unwrap();
}

#[tokio::test]
async fn update_form_nests_with_brackets() {
    let pet = r#"{"name": "Rex", "kind": {"type": "cat"}, "id": 7, "attributes": {}}"#;
    let (url, server) = serve_once("200 OK", "application/json", pet);
    let client = PetstoreClient::builder().base_url(url).build().unwrap();
    let update = PetUpdate {
        name: Some("Rex".into()),
        metadata: Some([("color".to_owned(), "red".to_owned())].into()),
        ..Default::default()
    };
    let pet = client.pets().update_form(7, &update).await.unwrap();
    assert_eq!(pet.id, 7);
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /pets/7 HTTP/1.1"), "{request}");
    assert!(
        request.ends_with("metadata%5Bcolor%5D=red&name=Rex"),
        "{request}"
    );
}

#[tokio::test]
async fn typed_errors_are_reachable() {
    let body = r#"{"errors": [{"field": "name", "message": "missing"}]}"#;
    let (url, server) = serve_once("422 Unprocessable Entity", "application/json", body);
    let client = PetstoreClient::builder().base_url(url).build().unwrap();
    let new_pet = serde_json::from_str(r#"{"name": "", "kind": {"type": "cat"}}"#).unwrap();
    let error = client.pets().create(&new_pet).await.unwrap_err();
    let typed = polvo_petstore::resources::pets::CreatePetErrors::from_error(&error).unwrap();
    assert!(
        matches!(typed, polvo_petstore::resources::pets::CreatePetErrors::Status422(e) if e.errors[0].field == "name")
    );
    server.join().unwrap();
}

#[tokio::test]
async fn upload_photo_sends_typed_multipart_parts() {
    let (url, server) = serve_once("200 OK", "application/json", r#"{"url": "/p/7.png"}"#);
    let client = PetstoreClient::builder().base_url(url).build().unwrap();
    let body = polvo_petstore::resources::pets::UploadPetPhotoMultipart {
        photo: ("rex.png".into(), polvo_runtime::Bytes::from_static(b"PNG")),
        caption: Some("Rex".into()),
    };
    let photo = client.pets().upload_photo(7, body).await.unwrap();
    assert_eq!(photo.url, "/p/7.png");
    let request = server.join().unwrap();
    assert!(
        request.starts_with("PUT /pets/7/photo HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.contains("name=\"photo\"; filename=\"rex.png\""),
        "{request}"
    );
    assert!(request.contains("name=\"caption\"\r\n\r\nRex"), "{request}");
}
