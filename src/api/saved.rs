//! Saved searches, segments and reports.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::error::ApiResult;
use super::extract::{int_param, Auth, JsonBody};
use super::search::stream_response;
use super::{json_status, ApiState};

/// Routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/saved-searches", post(create).get(list))
        .route("/v1/saved-searches/{id}", get(read).patch(update).delete(remove))
        .route("/v1/saved-searches/{id}/results", get(results))
        .route("/v1/saved-searches/{id}/count", get(count))
        .route("/v1/saved-searches/{id}/export", get(export))
        .route("/v1/reports", post(report))
}

type Params = Query<HashMap<String, String>>;

async fn create(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_saved_search(&c, &b)?))
}

async fn list(State(s): State<ApiState>, Auth(c): Auth, Query(q): Params) -> ApiResult<Response> {
    let all = q.get("all").is_some_and(|v| v == "true" || v.is_empty());
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_saved_searches(&c, all)?, &q)?,
    ))
}

async fn read(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_saved_search(&c, &id)?))
}

async fn update(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.update_saved_search(&c, &id, &b)?))
}

async fn remove(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_saved_search(&c, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn results(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let size = int_param(&q, "pageSize")?;
    let cursor = q.get("cursor").cloned().filter(|c| !c.is_empty());
    Ok(super::json_bytes(s.app.saved_results(&c, &id, size, cursor).await?))
}

async fn count(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.saved_count(&c, &id).await?))
}

async fn export(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let format = q.get("format").map(String::as_str).unwrap_or("ndjson");
    let rx = s.app.saved_export(&c, &id, format)?;
    Ok(stream_response(rx, format == "csv"))
}

async fn report(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.report(&c, &b).await?))
}
