//! Auto-paging against a real server that enforces its own limit: cursor, offset, page and
//! `Link` schemes, resuming from a saved position, and links to other hosts refused.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use polvo_runtime::paginate::{CursorFrom, PagePosition, Pagination};
use polvo_runtime::{Client, Limit, Method, Policy, QueryStyle, Request};
use serde_json::{Value, json};
use tokio::time::Instant;

const ITEMS: u64 = 23;
const PER_PAGE: u64 = 5;

#[derive(Default)]
struct Api {
    base: Mutex<String>,
    /// Arrival times, to check that the server's own limit held.
    arrivals: Mutex<Vec<Instant>>,
    rejected: Mutex<usize>,
}

impl Api {
    /// The server allows one request per 100 ms and answers faster ones with 429.
    fn admit(&self) -> bool {
        let now = Instant::now();
        let mut arrivals = self.arrivals.lock().unwrap();
        if arrivals
            .last()
            .is_some_and(|last| now - *last < Duration::from_millis(100))
        {
            *self.rejected.lock().unwrap() += 1;
            return false;
        }
        arrivals.push(now);
        true
    }
}

fn ids(from: u64, to: u64) -> Vec<Value> {
    (from..to.min(ITEMS))
        .map(|i| json!({"id": format!("it_{i:02}"), "n": i}))
        .collect()
}

async fn cursor(State(api): State<Arc<Api>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !api.admit() {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let from = q
        .get("starting_after")
        .map_or(0, |id| id[3..].parse::<u64>().unwrap() + 1);
    let data = ids(from, from + PER_PAGE);
    axum::Json(json!({"object": "list", "data": data, "has_more": from + PER_PAGE < ITEMS}))
        .into_response()
}

async fn offset(State(api): State<Arc<Api>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !api.admit() {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let from = q.get("offset").map_or(0, |o| o.parse().unwrap());
    axum::Json(json!({"results": ids(from, from + PER_PAGE)})).into_response()
}

async fn page(State(api): State<Arc<Api>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !api.admit() {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let page: u64 = q.get("page").map_or(1, |p| p.parse().unwrap());
    axum::Json(json!({"items": ids((page - 1) * PER_PAGE, page * PER_PAGE)})).into_response()
}

async fn linked(State(api): State<Arc<Api>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !api.admit() {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let page: u64 = q.get("page").map_or(1, |p| p.parse().unwrap());
    let mut headers = HeaderMap::new();
    if page * PER_PAGE < ITEMS {
        let base = api.base.lock().unwrap().clone();
        let link = format!(
            "<{base}/linked?page={}&per_page=5>; rel=\"next\", \
             <{base}/linked?page=1>; rel=\"first\"",
            page + 1
        );
        headers.insert("link", link.parse().unwrap());
    }
    (
        headers,
        axum::Json(ids((page - 1) * PER_PAGE, page * PER_PAGE)),
    )
        .into_response()
}

async fn elsewhere(State(api): State<Arc<Api>>) -> Response {
    api.admit();
    let mut headers = HeaderMap::new();
    headers.insert(
        "link",
        "<https://evil.example/steal?page=2>; rel=\"next\""
            .parse()
            .unwrap(),
    );
    (headers, axum::Json(ids(0, PER_PAGE))).into_response()
}

async fn serve() -> (Client, Arc<Api>) {
    let api = Arc::new(Api::default());
    let app = Router::new()
        .route("/cursor", axum::routing::get(cursor))
        .route("/offset", axum::routing::get(offset))
        .route("/page", axum::routing::get(page))
        .route("/linked", axum::routing::get(linked))
        .route("/elsewhere", axum::routing::get(elsewhere))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *api.base.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The client knows the server's limit: 10 per second, one at a time.
    let policy = Policy::builder()
        .bucket("default", [Limit::per_second(10).unwrap()])
        .build()
        .unwrap();
    (
        Client::builder("pages", policy)
            .base_url(base)
            .build()
            .unwrap(),
        api,
    )
}

async fn all(client: &Client, path: &'static str, scheme: Pagination) -> Vec<u64> {
    let request =
        Request::new(Method::GET, path, "list").query("limit", &PER_PAGE, QueryStyle::Form);
    let items: Vec<Value> = client
        .paginate::<Value>(request, scheme)
        .into_stream()
        .map(|item| item.unwrap())
        .collect()
        .await;
    items.iter().map(|i| i["n"].as_u64().unwrap()).collect()
}

#[tokio::test(start_paused = true)]
async fn every_scheme_walks_every_item_within_the_servers_limit() {
    let (client, api) = serve().await;
    let expected: Vec<u64> = (0..ITEMS).collect();
    let cursor_scheme = Pagination::Cursor {
        param: "starting_after",
        items: "data",
        has_more: Some("has_more"),
        next: CursorFrom::LastItem("id"),
    };
    assert_eq!(all(&client, "/cursor", cursor_scheme).await, expected);
    assert_eq!(
        all(
            &client,
            "/offset",
            Pagination::Offset {
                param: "offset",
                items: "results"
            }
        )
        .await,
        expected
    );
    let page_scheme = Pagination::Page {
        param: "page",
        items: "items",
        first: 1,
    };
    assert_eq!(all(&client, "/page", page_scheme).await, expected);
    assert_eq!(
        all(&client, "/linked", Pagination::LinkHeader { items: "" }).await,
        expected
    );

    assert_eq!(
        *api.rejected.lock().unwrap(),
        0,
        "pages were paced by the limiter"
    );
    // 5 cursor pages, 6 offset and 6 page requests (the last one empty), 5 linked pages.
    assert_eq!(api.arrivals.lock().unwrap().len(), 5 + 6 + 6 + 5);
}

#[tokio::test(start_paused = true)]
async fn a_saved_position_resumes_the_walk() {
    let (client, _api) = serve().await;
    let scheme = Pagination::Cursor {
        param: "starting_after",
        items: "data",
        has_more: Some("has_more"),
        next: CursorFrom::LastItem("id"),
    };
    let request = Request::new(Method::GET, "/cursor", "list");
    let mut pages = client.paginate::<Value>(request.clone(), scheme.clone());
    for _ in 0..PER_PAGE {
        pages.next().await.unwrap().unwrap();
    }
    let saved = pages.position().to_string();
    assert_eq!(saved, "next:it_04");
    drop(pages);

    let position: PagePosition = saved.parse().unwrap();
    let mut resumed = client.paginate::<Value>(request, scheme).resume(position);
    let first = resumed.next().await.unwrap().unwrap();
    assert_eq!(first["n"], 5);
    let mut rest = 1;
    while resumed.next().await.transpose().unwrap().is_some() {
        rest += 1;
    }
    assert_eq!(rest, ITEMS - PER_PAGE);
    assert_eq!(resumed.position(), &PagePosition::End);
}

#[tokio::test]
async fn a_link_to_another_host_is_not_followed() {
    let (client, _api) = serve().await;
    let mut pages = client.paginate::<Value>(
        Request::new(Method::GET, "/elsewhere", "list"),
        Pagination::LinkHeader { items: "" },
    );
    for _ in 0..PER_PAGE {
        pages.next().await.unwrap().unwrap();
    }
    let error = pages.next().await.unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: next-page link points to another origin (https://evil.example); \
         not following it"
    );
}
