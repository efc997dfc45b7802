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
