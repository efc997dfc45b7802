//! Search, count, export, field schema.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;

use super::error::ApiResult;
use super::extract::{Auth, JsonBody};
use super::{json_status, ApiState};

/// Routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/search", post(search))
        .route("/v1/search/count", post(count))
        .route("/v1/search/export", post(export))
        .route("/v1/search/schema", get(schema))
}

async fn search(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(super::json_bytes(s.app.search(&c, &b).await?))
}

async fn count(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.search_count(&c, &b).await?))
}

/// A streaming export response.
pub fn stream_response(rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>, csv: bool) -> Response {
    let stream = tokio_stream_from(rx);
    let ctype = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    ([(header::CONTENT_TYPE, ctype)], Body::from_stream(stream)).into_response()
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

async fn export(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    let format = q.get("format").map(String::as_str).unwrap_or("ndjson");
    let rx = s.app.search_export(&c, &b, format)?;
    Ok(stream_response(rx, format == "csv"))
}

async fn schema(State(s): State<ApiState>, Auth(c): Auth) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.search_schema(&c)?))
}
