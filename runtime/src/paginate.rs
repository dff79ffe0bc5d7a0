//! Auto-paging streams: every item of a list operation, page after page, each page
//! request paced by the limiter like any other.
//!
//! A [`Pages`] walks one of four schemes: a cursor taken from the last item or from a
//! response field (Stripe's `starting_after`/`has_more`), an offset, a page number, or
//! RFC 8288 `Link` headers (GitHub). [`Pages::position`] says where the walk stands; a
//! saved position resumes it later with [`Pages::resume`].

use std::collections::VecDeque;
use std::marker::PhantomData;

use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{Client, Response};
use crate::error::{DecodeError, Error};
use crate::request::Request;

/// How a list operation pages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pagination {
    /// A cursor request parameter, taken from each page.
    Cursor {
        /// The request parameter (`starting_after`).
        param: &'static str,
        /// The response field holding the items (`data`); empty for a top-level array.
        items: &'static str,
        /// A boolean response field saying more pages exist (`has_more`).
        has_more: Option<&'static str>,
        /// Where the next cursor comes from.
        next: CursorFrom,
    },
    /// An offset request parameter, advanced by the items received.
    Offset {
        /// The request parameter (`offset`).
        param: &'static str,
        /// The response field holding the items.
        items: &'static str,
    },
    /// A page-number request parameter, from `first`.
    Page {
        /// The request parameter (`page`).
        param: &'static str,
        /// The response field holding the items.
        items: &'static str,
        /// The first page's number.
        first: u64,
    },
    /// `Link: <url>; rel="next"` response headers.
    LinkHeader {
        /// The response field holding the items; empty for a top-level array.
        items: &'static str,
    },
}

/// Where a cursor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorFrom {
    /// A field of the page's last item (`id`).
    LastItem(&'static str),
    /// A field of the response (`next_page`).
    Response(&'static str),
}

/// Where a walk stands: enough to resume it. Stable across versions as text
/// (its `Display` form, read back with [`str::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagePosition {
    /// Before the first page.
    Start,
    /// A cursor, an offset, a page number or a next-page URL, as text.
    Next(String),
    /// Past the last page.
    End,
}

/// Every item of a list operation; see [`Client::paginate`].
#[derive(Debug)]
pub struct Pages<T> {
    client: Client,
    template: Request,
    scheme: Pagination,
    position: PagePosition,
    buffer: VecDeque<T>,
    _item: PhantomData<fn() -> T>,
}

impl Client {
    /// Walks every item of the list operation `request` starts, page by page.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use polvo_runtime::paginate::{CursorFrom, Pagination};
    /// use polvo_runtime::{Client, Method, QueryStyle, Request};
    ///
    /// # async fn run(client: Client) -> Result<(), polvo_runtime::Error> {
    /// let scheme = Pagination::Cursor {
    ///     param: "starting_after",
    ///     items: "data",
    ///     has_more: Some("has_more"),
    ///     next: CursorFrom::LastItem("id"),
    /// };
    /// let request = Request::new(Method::GET, "/v1/customers", "GetCustomers")
    ///     .query("limit", &100, QueryStyle::Form);
    /// let mut customers = client.paginate::<serde_json::Value>(request, scheme);
    /// while let Some(customer) = customers.next().await {
    ///     println!("{}", customer?["id"]);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn paginate<T: DeserializeOwned>(&self, request: Request, scheme: Pagination) -> Pages<T> {
        Pages {
            client: self.clone(),
            template: request,
            scheme,
            position: PagePosition::Start,
            buffer: VecDeque::new(),
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Pages<T> {
    /// The next item, fetching the next page when needed; `None` after the last one.
    ///
    /// # Errors
    ///
    /// Any error of the page request, or [`Error::Decode`] when a page does not hold
    /// items where the scheme says. The walk can go on after an error: the same page is
    /// asked for again.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(Ok(item));
            }
            if self.position == PagePosition::End {
                return None;
            }
            if let Err(error) = self.fetch().await {
                return Some(Err(error));
            }
        }
    }

    /// Where the walk stands: the position of the next page to fetch. Items of the
    /// current page not yet returned by [`Pages::next`] are before it.
    pub fn position(&self) -> &PagePosition {
        &self.position
    }

    /// Continues a walk from a saved position.
    pub fn resume(mut self, position: PagePosition) -> Self {
        self.position = position;
        self.buffer.clear();
        self
    }

    /// The walk as a stream of items.
    pub fn into_stream(self) -> impl Stream<Item = Result<T, Error>> {
        futures_util::stream::unfold(self, |mut pages| async move {
            let item = pages.next().await?;
            Some((item, pages))
        })
    }

    async fn fetch(&mut self) -> Result<(), Error> {
        let request = self.page_request()?;
        let response = self.client.execute(request).await?;
        let body: Value = response.json()?;
        let items = match items_of(&body, self.items_field()) {
            Some(items) => items,
            None => {
                return Err(decode_error(
                    &response,
                    "no items array where the scheme says",
                ));
            }
        };
        let count = items.len();
        let next = self.next_position(&response, &body, items, count);
        for item in items {
            let item = serde_json::from_value(item.clone())
                .map_err(|e| decode_error(&response, &e.to_string()))?;
            self.buffer.push_back(item);
        }
        self.position = next;
        Ok(())
    }

    fn items_field(&self) -> &'static str {
        match &self.scheme {
            Pagination::Cursor { items, .. }
            | Pagination::Offset { items, .. }
            | Pagination::Page { items, .. }
            | Pagination::LinkHeader { items } => items,
        }
    }

    fn page_request(&self) -> Result<Request, Error> {
        let request = self.template.clone();
        let PagePosition::Next(at) = &self.position else {
            return Ok(match &self.scheme {
                Pagination::Page { param, first, .. } if request.query_value(param).is_none() => {
                    request.set_query(param, first.to_string())
                }
                _ => request,
            });
        };
        Ok(match &self.scheme {
            Pagination::Cursor { param, .. }
            | Pagination::Offset { param, .. }
            | Pagination::Page { param, .. } => request.set_query(param, at.clone()),
            Pagination::LinkHeader { .. } => {
                let url = reqwest::Url::parse(at)
                    .map_err(|e| Error::InvalidRequest(format!("next-page link `{at}`: {e}")))?;
                let mut request = request;
                request.absolute = Some(url);
                request
            }
        })
    }

    fn next_position(
        &self,
        response: &Response,
        body: &Value,
        items: &[Value],
        count: usize,
    ) -> PagePosition {
        let end = PagePosition::End;
        match &self.scheme {
            Pagination::Cursor { has_more, next, .. } => {
                let more = has_more.map_or(count > 0, |field| body[field].as_bool() == Some(true));
                let cursor = match next {
                    CursorFrom::LastItem(field) => items.last().and_then(|i| text(&i[*field])),
                    CursorFrom::Response(field) => text(&body[*field]),
                };
                match cursor {
                    Some(cursor) if more => PagePosition::Next(cursor),
                    _ => end,
                }
            }
            Pagination::Offset { .. } if count == 0 => end,
            Pagination::Offset { .. } => {
                let at = self.current_number().unwrap_or(0);
                PagePosition::Next((at + count as u64).to_string())
            }
            Pagination::Page { .. } if count == 0 => end,
            Pagination::Page { first, .. } => {
                let at = self.current_number().unwrap_or(*first);
                PagePosition::Next((at + 1).to_string())
            }
            Pagination::LinkHeader { .. } => next_link(response).map_or(end, PagePosition::Next),
        }
    }

    /// The offset or page number of the page just fetched.
    fn current_number(&self) -> Option<u64> {
        match &self.position {
            PagePosition::Next(at) => at.parse().ok(),
            _ => match &self.scheme {
                Pagination::Offset { param, .. } | Pagination::Page { param, .. } => self
                    .template
                    .query_value(param)
                    .and_then(|v| v.parse().ok()),
                _ => None,
            },
        }
    }
}

fn items_of<'a>(body: &'a Value, field: &str) -> Option<&'a [Value]> {
    let items = if field.is_empty() {
        body
    } else {
        body.get(field)?
    };
    items.as_array().map(Vec::as_slice)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `rel="next"` target of a response's `Link` headers.
fn next_link(response: &Response) -> Option<String> {
    let values = response.headers().get_all(http::header::LINK);
    for value in values.iter().filter_map(|v| v.to_str().ok()) {
        for link in value.split(',') {
            let (target, params) = link.split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            let next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if next {
                return Some(target.to_owned());
            }
        }
    }
    None
}

fn decode_error(response: &Response, message: &str) -> Error {
    Error::Decode(Box::new(DecodeError {
        operation: response.operation().to_owned(),
        status: response.status(),
        body: response.bytes().clone(),
        message: message.to_owned(),
    }))
}

impl std::fmt::Display for PagePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start => f.write_str("start"),
            Self::Next(at) => write!(f, "next:{at}"),
            Self::End => f.write_str("end"),
        }
    }
}

impl std::str::FromStr for PagePosition {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "start" => Ok(Self::Start),
            "end" => Ok(Self::End),
            _ => text
                .strip_prefix("next:")
                .map(|at| Self::Next(at.to_owned()))
                .ok_or_else(|| {
                    Error::InvalidRequest(format!("`{text}` is not a saved page position"))
                }),
        }
    }
}
