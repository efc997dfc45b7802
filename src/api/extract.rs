//! Extractors: the authenticated caller, JSON bodies whose failures are JSON:API errors, and the
//! common query parameters.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use crate::error::{ErrorKind, Problem};
use crate::service::objects::{parse_if_match, WriteOptions};
use crate::service::{App, Caller};

/// The authenticated caller (`Authorization: Bearer <key>`).
pub struct Auth(pub Caller);

impl<S> FromRequestParts<S> for Auth
where
    App: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or("")
            .trim();
        if key.is_empty() {
            return Err(ApiError(
                Problem::new(
                    ErrorKind::Unauthorized,
                    "unauthorized",
                    "missing `Authorization: Bearer <key>`",
                )
                .header("Authorization")
                .into(),
            ));
        }
        let caller = app.authenticate(key)?;
        Ok(Auth(caller))
    }
}

/// A JSON body: malformed JSON is a 400, a body over the limit a 413.
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(
                    Problem::new(
                        ErrorKind::PayloadTooLarge,
                        "payload_too_large",
                        "the body is larger than the limit",
                    )
                    .into(),
                )
            } else {
                ApiError(Problem::bad_request("invalid_body", format!("cannot read the body: {e}")).into())
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError(
                Problem::bad_request("invalid_body", "a JSON body is required").into(),
            ));
        }
        let v = crate::service::input::parse_json(&bytes)?;
        Ok(JsonBody(v))
    }
}

/// Reads `?refresh=` (`wait_for` or `true` wait for the index; `false` or absent do not).
pub fn refresh(query: &std::collections::HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("refresh").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("wait_for") | Some("true") | Some("") => Ok(true),
        Some(other) => Err(ApiError(
            Problem::bad_request(
                "invalid_parameter",
                format!("`refresh` must be wait_for or false, not `{other}`"),
            )
            .param("refresh")
            .into(),
        )),
    }
}

/// Write options from the query string and headers.
pub fn write_options(
    query: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<WriteOptions, ApiError> {
    let if_match = match headers.get(axum::http::header::IF_MATCH) {
        None => None,
        Some(v) => {
            let s = v.to_str().unwrap_or("");
            if s.trim() == "*" {
                None
            } else {
                Some(parse_if_match(s).ok_or_else(|| {
                    ApiError(
                        Problem::bad_request("invalid_header", "`If-Match` must be a revision like \"3\"")
                            .header("If-Match")
                            .into(),
                    )
                })?)
            }
        }
    };
    Ok(WriteOptions {
        refresh: refresh(query)?,
        if_match,
        ..WriteOptions::default()
    })
}

/// Reads an optional integer query parameter.
pub fn int_param(query: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match query.get(name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError(
                Problem::bad_request("invalid_parameter", format!("`{name}` must be a non-negative integer"))
                    .param(name)
                    .into(),
            )
        }),
    }
}

/// `?pageSize=`: 1..1000, 50 when absent.
pub fn page_size(query: &std::collections::HashMap<String, String>) -> Result<usize, ApiError> {
    match int_param(query, "pageSize")? {
        None => Ok(50),
        Some(n @ 1..=1000) => Ok(n as usize),
        Some(n) => Err(ApiError(
            Problem::bad_request(
                "invalid_parameter",
                format!("`pageSize` must be between 1 and 1000, not {n}"),
            )
            .param("pageSize")
            .into(),
        )),
    }
}

/// The opaque cursor of a list paged by the store, after the item `last` of its kind `kind`.
pub fn store_cursor(kind: &str, last: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{last}"))
}

/// `?cursor=` of a list paged by the store: the item it was given out after (`None` for the
/// first page); 400 for a cursor another list gave out.
pub fn store_cursor_param(
    query: &std::collections::HashMap<String, String>,
    kind: &str,
) -> Result<Option<String>, ApiError> {
    use base64::Engine as _;
    let Some(c) = query.get("cursor").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(&format!("{kind}:")).map(str::to_string))
        .filter(|last| !last.is_empty())
        .map(Some)
        .ok_or_else(|| {
            ApiError(
                Problem::bad_request("invalid_parameter", "`cursor` is not a cursor this list gave out")
                    .param("cursor")
                    .into(),
            )
        })
}

/// One page of a list answer (`{"data":[...],"total":N,"nextCursor":null}` holding every item) as
/// `?pageSize=` (1..1000, default 50) and `?cursor=` ask. The cursor names the position and the
/// last item's id; when that item moved (an earlier one was deleted) the page starts after it.
pub fn paged(
    mut list: serde_json::Value,
    query: &std::collections::HashMap<String, String>,
) -> Result<serde_json::Value, ApiError> {
    use base64::Engine as _;
    let bad = |name: &str, title: String| ApiError(Problem::bad_request("invalid_parameter", title).param(name).into());
    let size = page_size(query)?;
    let items = match list.get_mut("data").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(items)) => items,
        _ => return Ok(list),
    };
    let id_of = |v: &serde_json::Value| v.get("id").and_then(|i| i.as_str()).unwrap_or_default().to_string();
    let start = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => {
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .and_then(|(o, id)| Some((o.parse::<usize>().ok()?, id.to_string())))
                });
            let Some((offset, last)) = decoded else {
                return Err(bad("cursor", "`cursor` is not a cursor this list gave out".into()));
            };
            match items.get(offset.wrapping_sub(1)) {
                Some(v) if id_of(v) == last => offset,
                _ => items
                    .iter()
                    .position(|v| id_of(v) == last)
                    .map_or(offset.min(items.len()), |i| i + 1),
            }
        }
    };
    let total = items.len();
    let end = (start + size).min(total);
    let next = (end < total)
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{end}:{}", id_of(&items[end - 1]))));
    let page: Vec<serde_json::Value> = items.into_iter().skip(start).take(end.saturating_sub(start)).collect();
    list["data"] = serde_json::Value::Array(page);
    list["total"] = serde_json::json!(total);
    list["nextCursor"] = serde_json::json!(next);
    Ok(list)
}
